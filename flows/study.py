"""Any study as one Prefect flow, whose body is its DAG:
housekeeping -> data -> base models -> preparation (Study K: mastery) -> plan -> cells -> release -> compact
-> report.

Cells start as soon as the cell they start from is done, at most `in_flight` at once; a slow cell holds up
nothing but its own children. A failed cell never stops the others: the flow ends Failed with the list of
failed cells and why. The run shows its progress in the Prefect UI.

Where preparations and cells run is chosen once, behind one interface (at the end of this file):

    runner.prepare(cfg, raw, data, bases) -> {model: preparation}
    runner.cells(cfg, raw, todo, contexts, progress) -> ["<cell>: why it failed", ...]

`Local`: tasks of this flow, on this machine. `Deployments` (`dispatch: deployments`): each base model's
preparation (where the study prepares on GPUs) and each job (a cell and the cells that start from its
checkpoint, ftscope/jobs.py) is a run of its deployment on workers that have the GPUs; the study flow needs none
and reads what they wrote from the store. If the study's own node is lost, the server resumes it on another
worker (tasks/automations.py).
"""

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.cell import job_parameters
from ftscope import jobs
from ftscope.cell import ModelContext
from ftscope.config import ConfigError, parse_config, resolved_raw
from ftscope.plan import pending
from ftscope.reproducible import settle, shared_threads
from ftscope.runs import RunRecord
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.validate import check_config, prompt_problems
from tasks.artifacts import CellProgress, summary_artifact
from tasks.dispatch import dispatch_task
from tasks.study import (
    base_model_task,
    cell_task,
    compact_task,
    housekeeping_task,
    not_run_task,
    plan_task,
    prepare_data_task,
    prepare_model_task,
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


# -- where preparations and cells run: chosen once per study (`dispatch:`), one interface --------------------

class Local:
    def prepare(self, cfg, raw: dict, data, bases: dict) -> dict:
        """Every base model's preparation at once: on GPUs, GPU slots allowing; on the CPU sharing the torch
        threads (the demo's three mastery scorings, 2 cores: 151 s one after the other at 2 threads, 122 s at once
        at 1 thread each; at 2 threads each they slowed each other down, 193 s)."""
        with shared_threads(cfg, len(cfg.models)):
            return _prepare(cfg, data, bases, len(cfg.models), hold=True)

    def cells(self, cfg, raw: dict, todo, contexts, progress: CellProgress) -> list[str]:
        """Submit every cell as a task, each waiting only for the cell it starts from, `workers` at once sharing the
        torch threads; returns the failures."""
        futures, failed = {}, []
        with shared_threads(cfg, cfg.in_flight), ThreadPoolTaskRunner(max_workers=cfg.in_flight) as runner:
            for p in todo:  # parents come first in the plan
                parent = [futures[p.parent_id]] if p.parent_id in futures else []
                # quote: Prefect would otherwise walk the context's data for futures (0.4 s a cell on the demo)
                futures[p.cid] = runner.submit(cell_task, {"cfg": cfg, "planned": p, "ctx": quote(contexts[p.cell.model]),
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


class Deployments:
    def prepare(self, cfg, raw: dict, data, bases: dict) -> dict:
        """A study that prepares on GPUs: each model's preparation is a run of the prepare deployment first, all
        at once; this flow then reads what they stored. Any other: as locally."""
        if not STUDIES.get(cfg.kind).prepares_on_gpus:
            return Local().prepare(cfg, raw, data, bases)
        with ThreadPoolTaskRunner(max_workers=len(cfg.models)) as runner:
            runs = [runner.submit(dispatch_task, {
                "cfg": cfg, "deployment": cfg.cluster.prepare_deployment, "model": m.name,
                "parameters": {"config": raw, "model": m.name}, "tags": [f"prepare:{cfg.study}:{m.name}"],
                "label": f"prepare {m.name}"}) for m in cfg.models]
            for r in runs:
                r.result()  # a failed preparation stops the study, as it does locally
        return _prepare(cfg, data, bases, len(cfg.models), hold=False)

    def cells(self, cfg, raw: dict, todo, contexts, progress: CellProgress) -> list[str]:
        """Every job as a run of the cell deployment, each waiting for the jobs its parents are in; the store
        says which of a job's cells got done."""
        key, parent = (lambda p: p.cid), (lambda p: p.parent_id)
        grouped = jobs.group(todo, key, parent, cfg.cluster.batch_variants)
        futures, job_of, failed = {}, {}, []
        with ThreadPoolTaskRunner(max_workers=cfg.in_flight) as runner:
            for n, job in enumerate(grouped):  # jobs of parents come first
                wait = [futures[job_of[k]] for k in jobs.needs(job, key, parent) if k in job_of]
                params = job_parameters(raw, job)
                futures[n] = runner.submit(dispatch_task, {
                    "cfg": cfg, "deployment": cfg.cluster.deployment, "parameters": params, "model": job[0].cell.model,
                    "tags": [f"cell:{p.cid}" for p in job], "label": params["label"]}, wait_for=wait)
                job_of.update({p.cid: n for p in job})
            job_by_future = {id(futures[n]): job for n, job in enumerate(grouped)}
            for fut in as_completed(list(futures.values())):
                fut.wait()
                job, state = job_by_future[id(fut)], fut.state
                # the store as the job left it, each table listed once for all its cells (a listing per cell made
                # the study's bookkeeping grow with the square of the cells: 4,145 cells, ~12,000 listings of 4,145
                # files)
                store = Store(cfg.results_dir, snapshot=True)
                for p in job:
                    done = (store.attempts(p.cid) or [{}])[-1].get("status") == "done"
                    progress.finished(p, Completed() if done else state if not state.is_completed() else
                                      Failed(message="its job completed without it"), store)
                    if not done:
                        why = state.message if state.is_failed() else "not run: the cell it starts from failed"
                        failed.append(f"{p.cell.label}: {why}")
        return failed


def runner_for(cfg) -> Local | Deployments:
    return Deployments() if cfg.dispatch == "deployments" else Local()


def _prepare(cfg, data, bases: dict, at_once: int, hold: bool) -> dict:
    """Every model's preparation as a task, `at_once` at a time; `hold=False`: read a stored preparation."""
    with ThreadPoolTaskRunner(max_workers=at_once) as runner:
        futures = {m.name: runner.submit(prepare_model_task, {"cfg": cfg, "name": m.name, "base_path": bases[m.name][0],
                                                              "data": data, "hold": hold}) for m in cfg.models}
        return {name: f.result() for name, f in futures.items()}
