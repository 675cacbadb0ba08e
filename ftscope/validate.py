"""`ftscope validate`: every problem with a study config, found before anything expensive runs."""

from pathlib import Path

from ftscope.config import ConfigError, StudyConfig, load_config
from ftscope.grid import capacity_problems, expand_grid
from ftscope.models import check_model_source


def validate(path: str, results_dir: str | None = None) -> tuple[StudyConfig | None, list[str], list[str]]:
    """(config, problems, notes). Problems make the config unrunnable; notes are for information."""
    try:
        cfg = load_config(path, {"results_dir": results_dir} if results_dir else None)
    except ConfigError as e:
        return None, e.problems, []
    cells = expand_grid(cfg)
    per_method = ", ".join(f"{sum(c.method == m for c in cells)} {m}" for m in cfg.grid.methods)
    problems, notes = [], [f"grid: {len(cells)} cells ({per_method}) over {len(cfg.models)} models x "
                           f"{len(cfg.grid.levels)} levels x {len(cfg.grid.sample_counts)} sample counts x "
                           f"{len(cfg.grid.seeds)} seeds"]
    for m in cfg.models:
        if m.path and (problem := check_model_source(m.path)):
            problems.append(f"models.{m.name}.path: {problem}")
        if m.processes > 1 and not Path(m.deepspeed).is_file():
            problems.append(f"models.{m.name}.deepspeed: no such DeepSpeed config file {m.deepspeed}")
    if cfg.data.source == "entityquestions" and not Path(cfg.data.path).exists() and cfg.data.path.count("/") != 1:
        problems.append(f"data.path: {cfg.data.path} is neither a local directory nor a dataset id 'org/name'")
    problems += _capacity(cfg, notes)
    return cfg, problems, notes


def _capacity(cfg: StudyConfig, notes: list[str]) -> list[str]:
    """Exact per-level check when mastery was already scored; otherwise a bound from the data size."""
    from ftscope.store import Store

    problems = []
    try:
        mastery = Store(cfg.results_dir).read("mastery")
    except OSError as e:
        return [f"results_dir: cannot open {cfg.results_dir}: {e}"]
    for m in cfg.models:
        rows = [r for r in mastery.to_pylist() if r["model"] == m.name]
        if rows:
            items = [{"item_id": r["item_id"], "split": r["split"], "domain": r["domain"]} for r in rows]
            levels = {r["item_id"]: r["level"] for r in rows}
            problems += [f"model {m.name}: {p}" for p in capacity_problems(cfg, items, levels)]
        else:
            notes.append(f"model {m.name}: mastery not scored yet; levels are checked again right after scoring")
    if cfg.data.source == "sandbox":
        w = cfg.data.sandbox
        n_train = int(w.facts_per_id_relation * len(cfg.data.id_relations) * (1 - w.test_fraction))
        if n_train < max(cfg.grid.sample_counts):
            problems.append(f"data.sandbox: about {n_train} ID training facts in all, fewer than the largest "
                            f"sample count {max(cfg.grid.sample_counts)}; raise facts_per_id_relation")
    return problems
