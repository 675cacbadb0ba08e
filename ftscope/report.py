"""What every study reports the same way: the state of each planned cell."""

from ftscope.store import Store


def status_table(store: Store) -> tuple[str, dict[str, int]]:
    """Every planned cell with its state: done, failed (with reason) or missing."""
    latest = store.latest_cells()
    lines, counts = [], {"done": 0, "failed": 0, "missing": 0}
    for row in store.read("plan").to_pylist():
        cell = latest.get(row["cell_id"])
        state = cell["status"] if cell else "missing"
        counts[state] = counts.get(state, 0) + 1
        why = f"  {cell['error']}" if cell and cell["status"] == "failed" else ""
        lines.append(f"{state:<8}{row['cell_id']}  {row['label']}{why}")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return "\n".join(lines + [summary]), counts


def study_report(store: Store, study: str | None = None) -> str:
    """The text tables of the study kinds found in the store's plan."""
    from ftscope.studies import STUDIES

    kinds = sorted({r["kind"] for r in store.read("plan").to_pylist() if not study or r["study"] == study})
    return "\n\n".join(STUDIES.get(k).report(store, study) for k in kinds if k in STUDIES) or "no planned cells yet"
