"""Study K's result tables, read back from the store with DuckDB: accuracy and KL over the grid
(rows: model / method variant / train level; columns: sample count) and mastery-level counts."""

from ftscope.store import Store


def grid_table(store: Store, table: str, value: str, domain: str, title: str, study: str | None = None) -> str:
    """Only cells of each study's latest plan count: cells of an earlier config stay in the store, unseen."""
    where = f"AND c.study = '{study}'" if study else ""
    try:
        rows = store.sql(f"""
            WITH grid AS (
                SELECT c.model, c.variant, coalesce(c.level, 'none') AS level, coalesce(c.n, 0) AS n, avg({value}) AS v
                FROM cells c JOIN {table} m USING (cell_id) SEMI JOIN plan p USING (cell_id)
                WHERE c.status = 'done' AND m.domain = '{domain}' AND m.slice = 'all' {where}
                GROUP BY ALL)
            SELECT * FROM grid  -- base first, then methods, restore variants by k
            ORDER BY model, variant != 'base', regexp_replace(variant, '[0-9.]+$', ''),
                     try_cast(regexp_extract(variant, '([0-9.]+)$', 1) AS DOUBLE) NULLS FIRST, level, n
            """).fetchall()
    except Exception:  # noqa: BLE001 -- no cell with these axes yet: the columns do not exist
        rows = []
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


def accuracy_table(store: Store, domain: str = "id", study: str | None = None) -> str:
    return grid_table(store, "metrics", "m.value * 100", domain,
                      f"accuracy (%) on {domain}_test, by train level x sample count", study)


def kl_table(store: Store, domain: str = "id", study: str | None = None) -> str:
    return grid_table(store, "kl", "m.value", domain, f"token-level KL to the base model on {domain}_test", study)


def mastery_summary(store: Store) -> str:
    """Mastery-level counts per model: how the scored items spread over the five levels."""
    rows = store.sql("SELECT model, domain, split, level, count(*) FROM mastery GROUP BY ALL ORDER BY ALL").fetchall()
    out: dict[tuple, dict[int, int]] = {}
    for model, domain, split, level, n in rows:
        out.setdefault((model, domain, split), {})[level] = n
    lines = ["items per mastery level (0..4)"]
    for (model, domain, split), c in out.items():
        lines.append(f"  {model} {domain}/{split}: " + " ".join(str(c.get(lvl, 0)) for lvl in range(5)))
    return "\n".join(lines)


def study_report(store: Store, study: str | None = None) -> str:
    """Everything the CLI prints at the end of a Study K run."""
    parts = [mastery_summary(store)]
    parts += [accuracy_table(store, domain, study) for domain in ("id", "ood")]
    parts += [kl_table(store, "id", study)]
    return "\n\n".join(parts)
