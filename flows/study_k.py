"""Study K as a Prefect flow: prepare data -> base models -> mastery -> grid cells -> report."""

from prefect import flow, get_run_logger
from prefect.states import Failed

from ftscope.cell import CellContext
from ftscope.checkpoint import checkpoint_dir
from ftscope.config import ConfigError
from ftscope.grid import capacity_problems
from ftscope.report import accuracy_table
from ftscope.store import Store
from ftscope.study import pending, plan_cells, release_checkpoints
from ftscope.validate import validate
from tasks.policy import ensure_gpu_limit
from tasks.study import base_model_task, cell_task, mastery_task, prepare_data_task


@flow(name="study-k")
def study_k(config_path: str, results_dir: str | None = None):
    log = get_run_logger()
    cfg, problems, notes = validate(config_path, results_dir)
    if problems:
        raise ConfigError(problems)
    store = Store(cfg.results_dir)
    if any(m.gpus for m in cfg.models):
        ensure_gpu_limit(cfg.gpu_slots)

    data = prepare_data_task(cfg)
    base = {m.name: base_model_task(cfg, m.name, data) for m in cfg.models}
    levels = {m.name: mastery_task(cfg, m.name, base[m.name], data) for m in cfg.models}
    problems = [f"model {name}: {p}" for name, lv in levels.items() for p in capacity_problems(cfg, data.items, lv)]
    if problems:
        raise ConfigError(problems + ["(mastery scores are stored; the next run reuses them)"])

    cells = plan_cells(cfg, data, base, store)
    todo = pending(cfg, cells, store)
    log.info("%d cells in the grid, %d already done, %d to run", len(cells), len(cells) - len(todo), len(todo))
    contexts = {name: CellContext(data.items, path, str(checkpoint_dir(path)), levels[name]) for name, path in base.items()}
    failed = []
    # Trained cells first, then restore cells (which edit their parents' checkpoints).
    for stage in ([p for p in todo if not p.parent_id], [p for p in todo if p.parent_id]):
        for start in range(0, len(stage), cfg.workers):  # at most `workers` cells at once on this machine
            batch = [(p, cell_task.submit(cfg, p.cell, p.cid, contexts[p.cell.model], p.parent_id, p.cell.label))
                     for p in stage[start:start + cfg.workers]]
            for p, fut in batch:
                fut.wait()
                if not fut.state.is_completed():
                    failed.append(f"{p.cell.label}: {fut.state.message}")
    release_checkpoints(cfg, cells, store)

    report = accuracy_table(store, "id_test", cfg.study)
    log.info("\n%s", report)
    if failed:
        return Failed(message=f"{len(failed)} of {len(todo)} cells failed:\n" + "\n".join(failed))
    return report
