"""Any study as one Prefect flow:
prepare data -> base models -> study preparation (Study K: mastery) -> plan -> cells -> release -> report.

Cells start as soon as the cell they start from is done (`wait_for`), at most `workers` at once; a
slow cell holds up nothing but its own children. A failed cell never stops the others: the flow ends
Failed with the list of failed cells and why.
"""

from prefect import flow, get_run_logger
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from ftscope.cell import ModelContext
from ftscope.config import ConfigError, load_config
from ftscope.plan import pending
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.validate import validate
from tasks.policy import ensure_gpu_limit
from tasks.study import (
    base_model_task,
    cell_task,
    plan_task,
    prepare_data_task,
    prepare_model_task,
    release_task,
    report_task,
)


@flow(name="study")
def study(config_path: str, results_dir: str | None = None, validated: bool = False):
    """Run (or resume) the study in `config_path`. `validated`: the caller already ran `validate`."""
    log = get_run_logger()
    cfg = load_config(config_path, {"results_dir": results_dir}) if validated else _validated(config_path, results_dir)
    kind = STUDIES.get(cfg.kind)
    if any(m.gpus for m in cfg.models):
        ensure_gpu_limit(cfg.gpu_slots)

    data = prepare_data_task(cfg)
    bases = {m.name: base_model_task(cfg, m.name, data) for m in cfg.models}  # name -> (path, local dir)
    preps = {m.name: prepare_model_task(cfg, m.name, bases[m.name][0], data) for m in cfg.models}
    if problems := kind.check(cfg, data, preps):
        raise ConfigError(problems + ["(the preparation is stored; the next run reuses it)"])

    planned = plan_task(cfg, data, {name: path for name, (path, _) in bases.items()})
    todo = pending(cfg, planned, Store(cfg.results_dir))
    log.info("%d cells in the grid, %d already done, %d to run", len(planned), len(planned) - len(todo), len(todo))
    contexts = {name: ModelContext(data, path, local, preps[name]) for name, (path, local) in bases.items()}
    failed = run_cells(cfg, todo, contexts)

    release_task(cfg, planned)
    report = report_task(cfg)
    log.info("\n%s", report)
    if failed:
        return Failed(message=f"{len(failed)} of {len(todo)} cells failed:\n" + "\n".join(failed))
    return report


def run_cells(cfg, todo, contexts) -> list[str]:
    """Submit every cell, each waiting only for the cell it starts from; returns the failures."""
    futures = {}
    with ThreadPoolTaskRunner(max_workers=cfg.workers) as runner:
        for p in todo:  # parents come first in the plan
            parent = [futures[p.parent_id]] if p.parent_id in futures else []
            futures[p.cid] = runner.submit(cell_task, {"cfg": cfg, "planned": p, "ctx": contexts[p.cell.model],
                                                       "label": p.cell.label}, wait_for=parent)
        failed = []
        for p in todo:
            futures[p.cid].wait()
            state = futures[p.cid].state
            if not state.is_completed():
                why = state.message if state.is_failed() else f"not run: the cell it starts from failed ({state.name})"
                failed.append(f"{p.cell.label}: {why}")
    return failed


def _validated(config_path: str, results_dir: str | None):
    cfg, problems, _ = validate(config_path, results_dir)
    if problems:
        raise ConfigError(problems)
    return cfg
