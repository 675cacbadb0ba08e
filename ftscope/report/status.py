"""`ftscope status`: the state of every planned cell (done, failed with its reason, missing; from its
claim: running, or crashed when the run that took it died), from the store and the claims alone."""

from pathlib import Path

from ftscope.locks import holder
from ftscope.store import Store


def status_table(store: Store, study: str | None = None, claims: Path | None = None,
                 prefect: dict | None = None) -> tuple[str, dict[str, int]]:
    """Every planned cell with its state (done, failed with its reason, missing; from its claim in
    `claims`: running, or crashed when the run that took it died) and timings; with `prefect` (cell id ->
    flow run), the state of its latest run on the server."""
    latest = store.latest_cells()
    lines, counts = [], {"done": 0, "failed": 0, "missing": 0}
    for row in store.read("plan").to_pylist():
        if study and row["study"] != study:
            continue
        cell = latest.get(row["cell_id"])
        state = cell["status"] if cell else "missing"
        claim = claims / f"{row['cell_id']}.lock" if claims is not None else None
        if state == "missing" and claim is not None and claim.exists():
            owner = holder(claim)
            state = f"running on {owner.get('host')} pid {owner.get('pid')}" if owner else "crashed"
        counts[state] = counts.get(state, 0) + 1
        timing = (f"  {cell['duration_s']:.0f}s (train {cell['train_s'] or 0:.0f}s, eval {cell['eval_s'] or 0:.0f}s)"
                  if cell and cell["duration_s"] is not None else "")
        why = f"  {cell['error']}" if cell and cell["status"] == "failed" else ""
        run = (prefect or {}).get(row["cell_id"])
        live = f"  [prefect: {run.state.name}]" if run is not None and run.state is not None else ""
        lines.append(f"{state:<8}{row['cell_id']}  {row['label']}{timing}{why}{live}")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return "\n".join(lines + [summary]), counts
