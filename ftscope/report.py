"""Result tables read back from the store with DuckDB."""

from ftscope.store import Store


def grid_table(store: Store, table: str, value: str, split: str, title: str, study: str | None = None) -> str:
    """A metric over the grid: rows = model / method variant / train level, columns = sample count.
    Only cells of each study's latest plan count: cells of an earlier config stay in the store, unseen."""
    where = f"AND c.study = '{study}'" if study else ""
    rows = store.sql(f"""
        WITH latest AS (SELECT * FROM cells QUALIFY row_number() OVER (PARTITION BY cell_id ORDER BY finished_at DESC) = 1),
        grid AS (SELECT c.model, c.variant, c.level, c.n_samples, avg({value}) AS v
                 FROM latest c JOIN {table} m USING (cell_id) SEMI JOIN plan p USING (cell_id)
                 WHERE c.status = 'done' AND m.split = '{split}' AND m.test_level = -1 {where}
                 GROUP BY ALL)
        SELECT * FROM grid  -- base first, then methods, restore variants by k
        ORDER BY model, variant != 'base', regexp_replace(variant, '[0-9.]+$', ''),
                 try_cast(regexp_extract(variant, '([0-9.]+)$', 1) AS DOUBLE) NULLS FIRST, level, n_samples
        """).fetchall()
    if not rows:
        return f"{title}: no finished cells yet"
    counts = sorted({r[3] for r in rows})
    grid: dict[tuple, dict[int, float]] = {}
    for model, variant, level, n, v in rows:
        grid.setdefault((model, variant, level), {})[n] = v
    head = f"{'model':<16}{'method':<20}{'level':<7}" + "".join(f"{'n=' + str(n):>9}" for n in counts)
    lines = [title, head, "-" * len(head)]
    for (model, variant, level), vals in grid.items():
        lines.append(f"{model:<16}{variant:<20}{level:<7}" + "".join(
            f"{vals[n]:>9.3g}" if n in vals else f"{'-':>9}" for n in counts))
    return "\n".join(lines)


def accuracy_table(store: Store, split: str = "id_test", study: str | None = None) -> str:
    return grid_table(store, "metrics", "m.accuracy * 100", split,
                      f"accuracy (%) on {split}, by train level x sample count", study)


def kl_table(store: Store, split: str = "id_test", study: str | None = None) -> str:
    return grid_table(store, "kl", "m.kl_mean", split, f"token-level KL to the base model on {split}", study)


def study_report(store: Store, study: str | None = None) -> str:
    """Everything the CLI prints at the end of a run."""
    parts = [mastery_summary(store)]
    parts += [accuracy_table(store, split, study) for split in ("id_test", "ood_test")]
    parts += [kl_table(store, "id_test", study)]
    return "\n\n".join(parts)


def mastery_summary(store: Store) -> str:
    """Mastery-level counts per model: how the scored items spread over the five levels."""
    rows = store.sql("""SELECT model, domain, split, level, count(*) FROM mastery GROUP BY ALL ORDER BY ALL""").fetchall()
    out: dict[tuple, dict[int, int]] = {}
    for model, domain, split, level, n in rows:
        out.setdefault((model, domain, split), {})[level] = n
    lines = ["items per mastery level (0..4)"]
    for (model, domain, split), c in out.items():
        lines.append(f"  {model} {domain}/{split}: " + " ".join(str(c.get(lvl, 0)) for lvl in range(5)))
    return "\n".join(lines)


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
