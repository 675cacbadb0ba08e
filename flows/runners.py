"""Where a study's preparations and cells run, chosen once per study (`dispatch:`), behind one interface:

    runner.prepare(cfg, raw, data, bases) -> {model: preparation}
    runner.cells(cfg, raw, todo, contexts, progress) -> ["<cell>: why it failed", ...]

`Local`: tasks of the study flow, on this machine; a cell waits only for the cell it starts from.
`Deployments`: each base model's preparation (where the study prepares on GPUs) and each job (a cell and the
cells that start from its checkpoint, ftscope/jobs.py) is a run of its deployment, on the cluster's workers; the
study flow waits for them and reads what they wrote from the store."""

from prefect.futures import as_completed
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cell import job_parameters
from ftscope import jobs
from ftscope.store import Store
from ftscope.studies import STUDIES
from tasks.artifacts import CellProgress
from tasks.dispatch import dispatch_task
from tasks.study import cell_task, prepare_model_task


class Local:
    def prepare(self, cfg, raw: dict, data, bases: dict) -> dict:
        """Every base model's preparation: on the CPU one at a time (preparations that share the cores only slow
        each other down: the demo's three mastery scorings took 193 s at once, about 110 s one after the other),
        on GPUs at once, GPU slots allowing."""
        at_once = len(cfg.models) if all(m.gpus for m in cfg.models) else 1
        return _prepare(cfg, data, bases, at_once, hold=True)

    def cells(self, cfg, raw: dict, todo, contexts, progress: CellProgress) -> list[str]:
        """Submit every cell as a task, each waiting only for the cell it starts from; returns the failures."""
        futures, failed = {}, []
        with ThreadPoolTaskRunner(max_workers=cfg.in_flight) as runner:
            for p in todo:  # parents come first in the plan
                parent = [futures[p.parent_id]] if p.parent_id in futures else []
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
