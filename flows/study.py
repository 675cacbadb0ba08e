"""Any study as one Prefect flow:
prepare data -> base models -> study preparation (Study K: mastery) -> plan -> cells -> release -> report.

Cells start as soon as the cell they start from is done (`wait_for`), at most `workers` at once; a
slow cell holds up nothing but its own children. A failed cell never stops the others: the flow ends
Failed with the list of failed cells and why. The run shows its progress in the Prefect UI.
"""

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cell import cell_parameters
from ftscope.cell import ModelContext
from ftscope.config import ConfigError, parse_config, resolved_raw
from ftscope.plan import pending
from ftscope.runs import RunRecord, mark_dead
from ftscope.runtime import pin_threads
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.validate import check_config
from tasks.artifacts import CellProgress, summary_artifact
from tasks.dispatch import dispatch_task
from tasks.policy import ensure_gpu_limit
from tasks.study import base_model_task, cell_task, plan_task, prepare_data_task, prepare_model_task, release_task, report_task


@flow(name="study")
def study(config_path: str | None = None, results_dir: str | None = None, validated: bool = False,
          config: dict | None = None):
    """Run (or resume) the study in `config_path`, or in `config` (a resolved config mapping, as
    `ftscope submit` sends it to a deployment run). `validated`: the caller already ran `validate`."""
    log = get_run_logger()
    raw = config if config is not None else resolved_raw(config_path, {"results_dir": results_dir})
    cfg = parse_config(raw) if validated else _validated(raw)
    kind = STUDIES.get(cfg.kind)
    pin_threads(cfg)
    store = Store(cfg.results_dir)
    store.sweep()  # temporaries of writers that died
    for line in store.repair():  # damaged files: moved aside, their cells redone below
        log.warning("repaired the store: %s", line)
    for dead in mark_dead(store, cfg.study):
        log.warning("run %s (pid %s) had died while running: recorded as crashed", dead["run_id"][:8], dead["pid"])
    run = RunRecord(cfg, store, flow_run.ui_url, flow_run.id)
    if any(m.gpus for m in cfg.models):
        ensure_gpu_limit(cfg.gpu_slots)

    data = prepare_data_task(cfg)
    bases = {m.name: base_model_task(cfg, m.name, data) for m in cfg.models}  # name -> (path, local dir)
    with ThreadPoolTaskRunner(max_workers=len(cfg.models)) as runner:  # base models prepare at once (GPU slots allowing)
        futures = {m.name: runner.submit(prepare_model_task, {"cfg": cfg, "name": m.name, "base_path": bases[m.name][0],
                                                              "data": data}) for m in cfg.models}
        preps = {name: f.result() for name, f in futures.items()}
    if problems := kind.check(cfg, data, preps):
        run.finish("failed", "; ".join(problems))
        raise ConfigError(problems + ["(the preparation is stored; the next run reuses it)"])

    planned = plan_task(cfg, data, {name: path for name, (path, _) in bases.items()})
    todo = pending(cfg, planned, store)
    log.info("%d cells in the grid, %d already done, %d to run", len(planned), len(planned) - len(todo), len(todo))
    contexts = {name: ModelContext(data, path, local, preps[name]) for name, (path, local) in bases.items()}
    failed = run_cells(cfg, raw, todo, contexts, CellProgress(cfg, len(planned), len(planned) - len(todo)))

    release_task(cfg, planned)
    report = report_task(cfg, return_state=True)
    text, page = report.result() if report.is_completed() else ("", None)
    if page:
        log.info("report: %s", page)
    summary_artifact(cfg, text, page, failed)
    if failed or not report.is_completed():
        message = "\n".join(([f"{len(failed)} of {len(todo)} cells failed:"] + failed if failed else []) +
                            ([] if report.is_completed() else [f"the report could not be written: {report.message}"]))
        finish(run, "failed", message)
        return Failed(message=message)
    finish(run, "completed")
    return text


def finish(run: RunRecord, status: str, message: str | None = None) -> None:
    """Record how the run ended; a full disk may refuse it, and the flow's own state still says."""
    try:
        run.finish(status, message)
    except OSError as e:
        get_run_logger().warning("could not record the run's end in the store: %s", e)


def run_cells(cfg, raw: dict, todo, contexts, progress: CellProgress) -> list[str]:
    """Submit every cell, each waiting only for the cell it starts from; returns the failures. Locally a
    cell is a task of this flow; with `dispatch: deployments`, a run of the cell deployment."""
    futures, failed = {}, []
    with ThreadPoolTaskRunner(max_workers=cfg.workers) as runner:
        for p in todo:  # parents come first in the plan
            parent = [futures[p.parent_id]] if p.parent_id in futures else []
            if cfg.dispatch == "deployments":
                futures[p.cid] = runner.submit(dispatch_task, {"cfg": cfg, "parameters": cell_parameters(raw, p),
                                                               "gpus": cfg.model(p.cell.model).gpus,
                                                               "label": p.cell.label}, wait_for=parent)
            else:
                futures[p.cid] = runner.submit(cell_task, {"cfg": cfg, "planned": p, "ctx": contexts[p.cell.model],
                                                           "label": p.cell.label}, wait_for=parent)
        planned_of = {id(f): p for p, f in zip(todo, (futures[p.cid] for p in todo))}
        for fut in as_completed(list(futures.values())):
            fut.wait()  # the future's own final state: the API may still say Running for a moment
            p, state = planned_of[id(fut)], fut.state
            progress.finished(p, state)
            if not state.is_completed():
                why = state.message if state.is_failed() else "not run: the cell it starts from failed"
                failed.append(f"{p.cell.label}: {why}")
    return failed


def _validated(raw: dict):
    cfg = parse_config(raw)
    problems, _ = check_config(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
