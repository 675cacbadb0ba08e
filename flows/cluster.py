"""The cluster side of the command line: submit a study as a run of the study deployment, retry what
is missing or failed, and read the Prefect state of each cell's runs. Needs a Prefect server
(PREFECT_API_URL)."""

import os
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_UI_URL
from prefect.states import Crashed

from ftscope.config import parse_config
from ftscope.plan import to_retry
from ftscope.runs import mark_dead
from ftscope.store import Store
from tasks.automations import ensure_automations
from tasks.dispatch import IN_FLIGHT, lost
from tasks.policy import ensure_gpu_limits


class NoServer(RuntimeError):
    pass


def require_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise NoServer("this needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api); "
                       "see the README's cluster runbook")


def ui_link(flow_run_id) -> str:
    return f"{PREFECT_UI_URL.value()}/flow-runs/flow-run/{flow_run_id}"


def submit(raw: dict, deployment: str = "study/study") -> str:
    """Create a run of the study deployment for this resolved config (first the server's automations and
    the GPU limits, where missing); returns its UI link. A run of the study still in flight is not doubled."""
    require_server()
    cfg = parse_config(raw)
    ensure_automations(cfg.cluster.lost_after_s)
    ensure_gpu_limits(cfg)
    if (running := study_in_flight(cfg.study)) is not None:
        raise StillRunning(f"study {cfg.study} is still {running.state.name}: {ui_link(running.id)} (it resumes by "
                           f"itself if its node is lost; cancel it in the UI to start over)")
    run = run_deployment(deployment, parameters={"config": raw, "validated": True}, timeout=0,
                         flow_run_name=f"{raw['study']}", tags=[f"study:{cfg.study}"])
    return ui_link(run.id)


def wait(run_id: str, poll_s: float = 5, resume_s: float = 300):
    """The run's final state, following the server's resumptions: Crashed counts as final only once it
    has not been resumed within `resume_s` (the automation resumes a crashed study at once)."""
    crashed_since = None
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                if not state.is_crashed():
                    return state
                crashed_since = crashed_since or time.monotonic()
                if time.monotonic() - crashed_since > resume_s:
                    return state
            else:
                crashed_since = None
            time.sleep(poll_s)


class StillRunning(RuntimeError):
    pass


def study_in_flight(study: str):
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"study:{study}"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=IN_FLIGHT))), limit=1)
    return runs[0] if runs else None


def cell_runs(cell_ids: list[str]) -> dict[str, object]:
    """cell id -> the latest flow run of the cell deployment for it (runs are tagged cell:<id>)."""
    require_server()
    out, runs = {}, []
    if not cell_ids:
        return out
    tags = FlowRunFilter(tags=FlowRunFilterTags(any_=[f"cell:{cid}" for cid in cell_ids]))
    with get_client(sync_client=True) as client:
        while True:  # the server answers at most 200 runs at a time
            page = client.read_flow_runs(flow_run_filter=tags, limit=200, offset=len(runs))
            runs += page
            if len(page) < 200:
                break
    for r in sorted(runs, key=lambda r: r.created):
        for tag in r.tags:
            if tag.startswith("cell:"):
                out[tag[5:]] = r
    return out


def mark_zombies(cfg, store: Store) -> list[str]:
    """Runs that Prefect still shows running though their worker died: cell runs (their claim is free
    and they wrote no result) and study runs (their process is gone), marked Crashed."""
    with get_client(sync_client=True) as client:
        for r in mark_dead(store, cfg.study):
            try:
                client.set_flow_run_state(r["run_id"], Crashed(message="its process died"), force=True)
            except Exception:  # noqa: BLE001 -- a run of another server, or already gone
                pass

    latest = store.latest_cells()
    planned = [r["cell_id"] for r in store.read("plan").to_pylist() if r["study"] == cfg.study]
    runs = cell_runs([cid for cid in planned if latest.get(cid, {}).get("status") != "done"])
    marked = []
    with get_client(sync_client=True) as client:
        for cid, run in runs.items():
            if run.state and not run.state.is_final() and (why := lost(cfg, run, client)):
                client.set_flow_run_state(run.id, Crashed(message=why), force=True)
                marked.append(cid)
    return marked


def retry(results: str, study: str | None = None, deployment: str = "study/study") -> tuple[list[str], str]:
    """Mark dead cell runs Crashed and submit the study again: only missing or failed cells run."""
    store = Store(results)
    raw, _ = to_retry(store, study)
    mark_zombies(parse_config(raw), store)
    _, todo = to_retry(Store(results), study)
    return todo, submit(raw, deployment)
