"""Any study as one Prefect flow, whose body is its DAG:
housekeeping -> data -> base models -> preparation (Study K: mastery) -> plan -> cells -> release -> compact
-> report.

Cells start as soon as the cell they start from is done, at most `in_flight` at once; a slow cell holds up
nothing but its own children. A failed cell never stops the others: the flow ends Failed with the list of
failed cells and why. The run shows its progress in the Prefect UI.

Where preparations and cells run is chosen once (flows/runners.py): tasks of this flow on this machine, or,
with `dispatch: deployments`, runs of their deployments on workers that have the GPUs; the study flow needs
none. If the study's own node is lost, the server resumes it on another worker (tasks/automations.py).
"""

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import runner_for
from ftscope.cell import ModelContext
from ftscope.config import ConfigError, parse_config, resolved_raw
from ftscope.plan import pending
from ftscope.reproducible import settle
from ftscope.runs import RunRecord
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.validate import check_config, prompt_problems
from tasks.artifacts import CellProgress, summary_artifact
from tasks.study import (
    base_model_task,
    compact_task,
    housekeeping_task,
    not_run_task,
    plan_task,
    prepare_data_task,
    release_task,
    report_task,
)


@flow(name="study")
def study(config_path: str | None = None, results_dir: str | None = None, validated: bool = False,
          config: dict | None = None):
    """Run (or resume) the study in `config_path`, or in `config` (a resolved config mapping, as
    `ftscope submit` sends it to a deployment run). `validated`: the caller already ran `validate`."""
    raw = config if config is not None else resolved_raw(config_path, {"results_dir": results_dir})
    cfg = parse_config(raw) if validated else _validated(raw)
    if (given_up := _restart_policy(cfg)) is not None:
        return given_up
    settle(cfg)
    runner = runner_for(cfg)  # this machine's tasks, or the cluster's deployments

    run = housekeeping_task(cfg, flow_run.ui_url, flow_run.id)
    data = prepare_data_task(cfg)
    bases = base_models(cfg, data)  # name -> (path, local dir)
    check_prompts(cfg, bases, run)
    preps = runner.prepare(cfg, raw, data, bases)
    planned = plan_task(cfg, data, {name: path for name, (path, _) in bases.items()})
    not_run = not_run_task(cfg, planned, data, preps)
    todo = to_run(cfg, planned, not_run)
    contexts = {name: ModelContext(data, path, local, preps[name]) for name, (path, local) in bases.items()}
    failed = runner.cells(cfg, raw, todo, contexts, CellProgress(cfg, len(planned), len(planned) - len(todo)))
    release_task(cfg, planned)
    compacted = compact_task(cfg, return_state=True)  # a failure loses nothing: the next run compacts
    report = report_task(cfg, return_state=True)
    return conclude(cfg, run, compacted, report, failed, len(todo))


def _restart_policy(cfg):
    """A run the server resumed after its node was lost goes on from what the store says, up to
    cluster.study_restarts times; then it gives up (Failed)."""
    if (resumed := flow_run.get_run_count() - 1) <= 0:
        return None
    if resumed > cfg.cluster.study_restarts:
        return Failed(message=f"its node was lost {resumed} times (cluster.study_restarts "
                              f"{cfg.cluster.study_restarts}): giving up; `ftscope retry` starts it again")
    get_run_logger().warning("resumed after its node was lost (%d of %d): the store says what is done", resumed,
                             cfg.cluster.study_restarts)
    return None


def base_models(cfg, data) -> dict:
    """Every base model at once: sandbox models pretrain side by side, each in a process of its own."""
    with ThreadPoolTaskRunner(max_workers=len(cfg.models)) as runner:
        futures = {m.name: runner.submit(base_model_task, {"cfg": cfg, "name": m.name, "data": data}) for m in cfg.models}
        return {name: f.result() for name, f in futures.items()}


def check_prompts(cfg, bases: dict, run: RunRecord) -> None:
    """Prompts longer than a model's context, now that every tokenizer is at hand: the run ends here, failed."""
    local = {name: local for name, (_, local) in bases.items()}
    if problems := prompt_problems(cfg, STUDIES.get(cfg.kind), local):
        run.finish("failed", "; ".join(problems))
        raise ConfigError(problems + ["(the base models are built and cached; the next run reuses them)"])


def to_run(cfg, planned, not_run: dict) -> list:
    """The planned cells not done yet and not refused by the data, logged with how many are which."""
    log = get_run_logger()
    todo = pending(cfg, planned, Store(cfg.results_dir), set(not_run))
    log.info("%d cells in the grid, %d already done, %d the data cannot run, %d to run", len(planned),
             len(planned) - len(todo) - len(not_run), len(not_run), len(todo))
    for why in sorted(set(not_run.values())):
        log.warning("%d cell(s) %s", sum(w == why for w in not_run.values()), why)
    return todo


def conclude(cfg, run: RunRecord, compacted, report, failed: list[str], ran: int):
    """The study's end: the compaction and the report logged, the summary artifact, the run recorded; Failed with
    the failed cells and why, or the report's text."""
    log = get_run_logger()
    for line in compacted.result() if compacted.is_completed() else [f"not compacted: {compacted.message}"]:
        log.info("store: %s", line)
    text, page = report.result() if report.is_completed() else ("", None)
    if page:
        log.info("report: %s", page)
    summary_artifact(cfg, text, page, failed)
    if failed or not report.is_completed():
        message = "\n".join(([f"{len(failed)} of {ran} cells failed:"] + failed if failed else []) +
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


def _validated(raw: dict):
    cfg = parse_config(raw)
    problems, _ = check_config(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
