"""Cells as runs of the cell deployment (`dispatch: deployments`): each gets its own worker,
infrastructure and GPU request. The study waits for each run and notices one whose worker died: the
cell's claim was taken by that run and is free again, yet the cell wrote no final row. Such a run is
marked Crashed (Prefect would show it Running forever), and `ftscope retry` runs the cell again."""

import time

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Crashed

from ftscope import checkpoints
from ftscope.locks import holder, last_owner
from ftscope.store import Store


class CellRunFailed(RuntimeError):
    """The cell's flow run ended in another state than Completed."""


def crashed(cfg, cid: str, run_id: str) -> bool:
    """The run took the cell's claim, no longer holds it, and the cell wrote no row after it started."""
    claim = checkpoints.claim_of(cfg, cid)
    owner = last_owner(claim)
    if owner.get("run") != run_id or holder(claim) is not None:
        return False
    since = owner.get("since", 0)
    return not any(r["finished_at"].timestamp() >= since for r in Store(cfg.results_dir).attempts(cid))


@task(name="dispatch", cache_policy=NO_CACHE, task_run_name="cell {label}")
def dispatch_task(cfg, parameters: dict, gpus: int, label: str) -> str:
    """Start the cell's run and wait for it; returns the run's id, raises if it did not complete."""
    job_variables = dict(cfg.cluster.job_variables)
    if cfg.cluster.gpu_variable and gpus:
        job_variables[cfg.cluster.gpu_variable] = gpus
    run = run_deployment(cfg.cluster.deployment, parameters=parameters, job_variables=job_variables, timeout=0,
                         as_subflow=True, tags=[f"cell:{parameters['cell_id']}"])
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                break
            if crashed(cfg, parameters["cell_id"], str(run.id)):
                state = Crashed(message="the cell's worker died (its claim was released without a result)")
                client.set_flow_run_state(run.id, state, force=True)
                break
            time.sleep(cfg.cluster.poll_s)
    if not state.is_completed():
        raise CellRunFailed(f"cell run {run.name} ended {state.name}: {state.message or ''}")
    return str(run.id)
