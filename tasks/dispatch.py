"""Jobs as runs of a deployment (`dispatch: deployments`): a cell and its variants (deployment `cell`) or
a base model's preparation (deployment `prepare`), each on its own worker with its own infrastructure
and GPU request. The study waits for each run and notices one whose node was lost:

- marked Crashed by the server (the ftscope automations: its heartbeats stopped);
- started (it took its run lock, on the shared filesystem) and the lock is free while the run is not
  final: its process died;
- picked up by a worker (Pending or Running) but no run lock `start_timeout_s` later: its node was
  lost before the run began.

Such a run is marked Crashed, with the reason, and dispatched again (`cluster.redispatch` times). A run
already in flight for the same job (a study resumed after its own node was lost) is adopted, not doubled.
"""

import contextvars
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.logging import get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.states import Crashed

from ftscope.faults import kill_point
from ftscope.locks import hold_until_exit, holder, last_owner


class JobRunFailed(RuntimeError):
    """The job's flow run ended in another state than Completed."""


IN_FLIGHT = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]


def run_lock(cfg, run_id) -> Path:
    return Path(cfg.artifacts_dir) / "runs" / f"{run_id}.lock"


def mark_started(cfg) -> None:
    """A dispatched run's first act: hold its run lock until the process ends (see the module docstring).
    Runs not started by a deployment (a flow called in-process) hold nothing."""
    if flow_run.get_id() and deployment.get_id():
        hold_until_exit(run_lock(cfg, flow_run.get_id()), owner={"run": str(flow_run.get_id())})


def lost(cfg, run, client) -> str | None:
    """Why the not-final run `run` counts as lost, or None while it may still be working."""
    path = run_lock(cfg, run.id)
    if last_owner(path).get("run") == str(run.id):
        if holder(path) is not None:
            return None
        state = client.read_flow_run(run.id).state  # a run that just ended freed its lock after its final state
        return None if state is None or state.is_final() else "its process died: its worker or node was lost"
    state = run.state
    if state is not None and state.type in (StateType.PENDING, StateType.RUNNING):
        waited = (datetime.now(timezone.utc) - state.timestamp).total_seconds()
        if waited > cfg.cluster.start_timeout_s:
            return (f"a worker took it {waited:.0f} s ago and it never started (cluster.start_timeout_s "
                    f"{cfg.cluster.start_timeout_s:g}): its node was lost before the run began")
    return None


def _in_flight(client, tag: str):
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        tags=FlowRunFilterTags(all_=[tag]), state=FlowRunFilterState(type=FlowRunFilterStateType(any_=IN_FLIGHT))),
        limit=10)
    return max(runs, key=lambda r: r.created) if runs else None


class Watcher:
    """Waits for many runs with one API call per poll (`read_flow_runs` by id, 200 at a time), however many jobs
    are in flight: a poll per job made the study's calls grow with its jobs (365 at once at paper scale, each
    read every `poll_s`). Each waiting task blocks on its own event; one thread polls for all of them."""

    CHUNK = 200
    MISSED_POLLS = 5  # polls in a row the server may fail before every waiting job fails

    def __init__(self):
        self._lock, self._waiting, self._thread = threading.Lock(), {}, None

    def wait(self, cfg, run_id):
        """The run's final state, or Crashed (set on the server too) once it counts as lost."""
        entry = {"cfg": cfg, "done": threading.Event()}
        with self._lock:
            self._waiting[str(run_id)] = entry
            if self._thread is None:  # it inherits the caller's Prefect settings (the API's address)
                self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._loop,), daemon=True)
                self._thread.start()
        entry["done"].wait()
        if "error" in entry:
            raise entry["error"]
        return entry["state"]

    def _loop(self) -> None:
        missed = 0
        try:
            with get_client(sync_client=True) as client:
                while True:
                    with self._lock:
                        if not self._waiting:
                            self._thread = None
                            return
                        ids = list(self._waiting)
                        poll = min(e["cfg"].cluster.poll_s for e in self._waiting.values())
                    try:
                        for i in range(0, len(ids), self.CHUNK):
                            chunk = ids[i:i + self.CHUNK]
                            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
                                                         limit=len(chunk))
                            for run in runs:
                                self._check(client, run)
                            for gone in set(chunk) - {str(r.id) for r in runs}:
                                self._end(gone, error=RuntimeError(f"flow run {gone} is no longer on the server"))
                        missed = 0
                    except httpx.TransportError:
                        missed += 1  # a server restart or a full listen queue: tried again at the next poll
                        if missed >= self.MISSED_POLLS:
                            raise
                    time.sleep(poll)
        except BaseException as e:  # the server is gone: every waiting task fails with the reason, none hangs
            with self._lock:
                waiting, self._waiting, self._thread = self._waiting, {}, None
            for entry in waiting.values():
                entry["error"] = e
                entry["done"].set()

    def _end(self, run_id: str, state=None, error: BaseException | None = None) -> None:
        with self._lock:
            entry = self._waiting.pop(run_id)
        entry.update({"state": state} if error is None else {"error": error})
        entry["done"].set()

    def _check(self, client, run) -> None:
        cfg = self._waiting[str(run.id)]["cfg"]
        if run.state is not None and run.state.is_final():
            self._end(str(run.id), run.state)
        elif why := lost(cfg, run, client):
            state = Crashed(message=why)
            client.set_flow_run_state(run.id, state, force=True)
            self._end(str(run.id), state)


WATCHER = Watcher()


def job_variables(cfg, model) -> dict:
    """The job variables of a model's runs: the cluster's, the model's over them, its GPU count."""
    variables = {**cfg.cluster.job_variables, **model.job_variables}
    if cfg.cluster.gpu_variable and model.gpus:
        variables[cfg.cluster.gpu_variable] = model.gpus
    return variables


@task(name="dispatch", cache_policy=NO_CACHE, task_run_name="{label}")
def dispatch_task(cfg, deployment: str, parameters: dict, model: str, tags: list[str], label: str) -> str:
    """Run one job as a run of `deployment` and wait for it; returns the run's id, raises if it did not
    complete. `tags[0]` names the job (a run in flight with it is adopted)."""
    m, variables = cfg.model(model), job_variables(cfg, cfg.model(model))
    with get_client(sync_client=True) as client:
        run = _in_flight(client, tags[0])
    if run is not None:
        get_run_logger().info("%s: adopting run %s, already %s", label, run.name, run.state.name if run.state else "?")
    for attempt in range(cfg.cluster.redispatch + 1):
        if run is None:
            run = run_deployment(deployment, parameters=parameters, job_variables=variables, timeout=0,
                                 as_subflow=True, tags=tags, work_queue_name=m.work_queue)
            kill_point(f"dispatch:{deployment.split('/')[0]}")
        state = WATCHER.wait(cfg, run.id)
        if state.is_completed():
            return str(run.id)
        if not state.is_crashed() or attempt == cfg.cluster.redispatch:
            break
        get_run_logger().warning("%s: run %s crashed (%s); dispatched again", label, run.name, state.message)
        run = None
    raise JobRunFailed(f"run {run.name} ended {state.name}: {state.message or ''}")
