"""Study G's result tables, read back from the store with DuckDB: the mean score of each method by
training task and test relation, and the parameter difference of each fine-tuned model."""

from ftscope.store import Store

LABELS = {"sft": "FT", "icl": "ICL", "fticl": "FTICL", "base": "base", "lora": "FT (LoRA)"}


def method_label(method: str, variant: str, shots: int) -> str:
    name = LABELS.get(method, method)
    if method == "icl":
        return f"{name}-{shots}"
    return f"{name}-{variant.split('-', 1)[1]}" if "-" in variant and method == "fticl" else name


def generalization_table(store: Store, study: str | None = None) -> str:
    """Rows: train task x method (x size); columns: in-domain, out-of-domain, cross-task. Each value is
    the mean over test sets and prompt maps (accuracy or ROUGE-L F, %); fine-tuned models at 0 shots,
    ICL at each test set's largest shots."""
    where = f"AND c.study = '{study}'" if study else ""
    try:
        rows = store.sql(f"""
            WITH r AS (
                SELECT c.cell_id, c.method, c.variant, c.size, m.task, m.dataset, m.domain AS relation, m.shots,
                       m.value, max(m.shots) OVER (PARTITION BY m.cell_id, m.dataset) AS max_shots
                FROM metrics m JOIN cells c USING (cell_id) SEMI JOIN plan p USING (cell_id)
                WHERE c.status = 'done' AND m.slice = 'all' {where}),
            train_task AS (SELECT cell_id, any_value(task) AS train_task FROM r  -- trained cells only
                           WHERE relation != 'cross_task' AND method NOT IN ('icl', 'base') GROUP BY cell_id)
            SELECT CASE WHEN r.method IN ('icl', 'base') THEN r.task ELSE t.train_task END, r.method, r.variant,
                   coalesce(r.size, 0), r.relation,
                   CASE WHEN r.method IN ('icl', 'base') THEN r.max_shots ELSE 0 END AS k, avg(r.value) * 100
            FROM r LEFT JOIN train_task t USING (cell_id)
            WHERE r.shots = CASE WHEN r.method IN ('icl', 'base') THEN r.max_shots ELSE 0 END
            GROUP BY ALL ORDER BY ALL""").fetchall()
    except Exception:  # noqa: BLE001 -- no Study G cells yet
        rows = []
    if not rows:
        return "Study G: no finished cells yet"
    grid: dict[tuple, dict[str, float]] = {}
    for task, method, variant, size, rel, k, v in rows:
        key = (task, method_label(method, variant, k), size if method not in ("icl", "base") else 0)
        grid.setdefault(key, {})[rel] = v
    rels = ("in_domain", "out_of_domain", "cross_task")
    head = f"{'train task':<22}{'method':<12}{'size':>6}" + "".join(f"{r:>15}" for r in rels)
    lines = ["Study G: mean score (%) by training task and test relation (accuracy or ROUGE-L F; over test sets "
             "and prompt maps;\n  fine-tuned models at 0 shots, ICL at each test set's largest shots)", head,
             "-" * len(head)]
    for (task, label, size), vals in sorted(grid.items(), key=lambda kv: (kv[0][0], kv[0][1] != "ICL" and
                                                                          not kv[0][1].startswith("ICL"), kv[0])):
        lines.append(f"{task:<22}{label:<12}{size or '-':>6}" + "".join(
            f"{vals[r]:>15.1f}" if r in vals else f"{'-':>15}" for r in rels))
    return "\n".join(lines)


def param_table(store: Store, study: str | None = None) -> str:
    where = f"AND c.study = '{study}'" if study else ""
    try:
        rows = store.sql(f"""
            SELECT c.train, c.variant, c.size, p.mean_change FROM params p JOIN cells c USING (cell_id)
            SEMI JOIN plan USING (cell_id)
            WHERE p.scope = 'region' AND p.measure = 'absolute' AND c.kind = 'g' {where} ORDER BY ALL""").fetchall()
    except Exception:  # noqa: BLE001
        rows = []
    if not rows:
        return "parameter difference: no fine-tuned cells yet"
    lines = ["mean |theta_ft - theta_base| over all parameters", f"{'train':<20}{'method':<12}{'size':>6}{'mean':>12}"]
    width = max(len(t) for t, *_ in rows) + 2
    lines[1] = f"{'train':<{width}}{'method':<12}{'size':>6}{'mean':>12}"
    lines += [f"{t:<{width}}{v:<12}{s:>6}{m:>12.3g}" for t, v, s, m in rows]
    return "\n".join(lines)


def study_report(store: Store, study: str | None = None) -> str:
    return generalization_table(store, study) + "\n\n" + param_table(store, study)
