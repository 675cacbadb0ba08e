"""`ftscope status`: the state of every planned cell from the store and the claims alone. A cell is done,
failed (with its reason), not run (the data cannot run it: a mastery level with too few items), damaged (a result
file was moved aside by `repair`), missing, running (its claim is held: where, and how far along it is), or crashed
(its claim was taken and let go, by a process that wrote no result: the reason, when the claim kept one)."""

import time
from pathlib import Path

from ftscope.locks import holder, last_owner
from ftscope.progress import read_progress
from ftscope.store import Store

STATES = ("done", "failed", "damaged", "running", "crashed", "not_run", "missing")


def cell_state(row: dict | None, claim: Path | None) -> tuple[str, str]:
    """(state, details) of one planned cell, from its latest attempt and its claim."""
    if row is not None and row["status"] == "done":
        return "done", (f"{row['duration_s']:.0f}s (train {row['train_s'] or 0:.0f}s, eval {row['eval_s'] or 0:.0f}s)"
                        if row["duration_s"] is not None else "")
    owner = holder(claim) if claim is not None and claim.exists() else None
    if owner is not None:
        progress = read_progress(claim)
        where = f"on {owner.get('host')} pid {owner.get('pid')}"
        return "running", f"{where}, {progress}" if progress else where
    if row is not None:
        return row["status"], row["error"] or ""
    if claim is not None and claim.exists():
        last = last_owner(claim)
        if last.get("error"):
            return "crashed", f"{last['error']} (its failed row could not be written to the store)"
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.get("since", 0)))
        return "crashed", f"taken by pid {last.get('pid')} on {last.get('host')} at {since}, which wrote no result"
    return "missing", ""


def status_table(store: Store, study: str | None = None, claims: Path | None = None,
                 prefect: dict | None = None) -> tuple[str, dict[str, int]]:
    """Every planned cell with its state and details; with `prefect` (cell id -> flow run), the state of its
    latest run on the server. Returns (text, count per state)."""
    latest = store.latest_cells()
    lines, counts = [], {"done": 0, "failed": 0, "missing": 0}
    for row in store.read("plan").to_pylist():
        if study and row["study"] != study:
            continue
        state, details = cell_state(latest.get(row["cell_id"]), claims / f"{row['cell_id']}.lock" if claims else None)
        counts[state] = counts.get(state, 0) + 1
        run = (prefect or {}).get(row["cell_id"])
        live = f"  [prefect: {run.state.name}]" if run is not None and run.state is not None else ""
        lines.append(f"{state:<8}{row['cell_id']}  {row['label']}{'  ' + details if details else ''}{live}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: STATES.index(kv[0])))
    if not lines:
        summary = "no plan yet: " + preparing(claims)
    return "\n".join(lines + [summary]), counts


def preparing(claims: Path | None) -> str:
    """What a study does before its plan exists: data, base models, then each model's preparation (Study K:
    mastery), with the progress a running preparation reports."""
    running = []
    for claim in sorted(claims.glob("mastery-*.lock")) if claims is not None and claims.is_dir() else []:
        if (owner := holder(claim)) is not None:
            running.append(f"{claim.stem[len('mastery-'):].rsplit('-', 1)[0]} on {owner.get('host')}"
                           + (f", {p}" if (p := read_progress(claim)) else ""))
    return ("preparing (mastery: " + "; ".join(running) + ")") if running else \
        "preparing (data, base models, mastery), or not started"
