"""The cluster side of the command line: submit a study as a run of the study deployment, retry what
is missing or failed, and read the Prefect state of each cell's runs. Needs a Prefect server
(PREFECT_API_URL)."""

import os

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_UI_URL

from ftscope.config import parse_config
from ftscope.store import Store


class NoServer(RuntimeError):
    pass


def require_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise NoServer("this needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api); "
                       "see the README's cluster runbook")


def ui_link(flow_run_id) -> str:
    return f"{PREFECT_UI_URL.value()}/flow-runs/flow-run/{flow_run_id}"


def submit(raw: dict, deployment: str = "study/study") -> str:
    """Create a run of the study deployment for this resolved config; returns its UI link."""
    require_server()
    run = run_deployment(deployment, parameters={"config": raw, "validated": True}, timeout=0,
                         flow_run_name=f"{raw['study']}")
    return ui_link(run.id)


def latest_config(store: Store, study: str | None = None) -> dict:
    """The resolved config of the latest run recorded in a results directory."""
    runs = sorted((r for r in store.read("runs").to_pylist() if not study or r["study"] == study),
                  key=lambda r: r["started_at"])
    if not runs:
        raise ValueError(f"{store.uri} records no run{' of ' + study if study else ''}: nothing to retry")
    return yaml.safe_load(runs[-1]["config"])


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


def dead_study_runs(store: Store, study: str) -> list[dict]:
    """Study runs recorded as running whose process is gone (checked on this host only)."""
    import socket

    from ftscope.store import _alive

    last: dict[str, dict] = {}
    for r in sorted(store.read("runs").to_pylist(), key=lambda r: (r["started_at"], r["finished_at"] is not None)):
        last[r["run_id"]] = r
    return [r for r in last.values() if r["study"] == study and r["status"] == "running"
            and r["host"] == socket.gethostname() and r["pid"] is not None and not _alive(r["pid"])]


def mark_zombies(cfg, store: Store) -> list[str]:
    """Runs that Prefect still shows running though their worker died: cell runs (their claim is free
    and they wrote no result) and study runs (their process is gone), marked Crashed."""
    from datetime import datetime, timezone

    from prefect.states import Crashed

    from tasks.dispatch import crashed

    with get_client(sync_client=True) as client:
        for r in dead_study_runs(store, cfg.study):
            try:
                client.set_flow_run_state(r["run_id"], Crashed(message="its process died"), force=True)
            except Exception:  # noqa: BLE001 -- a run of another server, or already gone
                pass
            store.write("runs", f"{r['run_id']}-crashed", [{**r, "status": "crashed", "message": "its process died",
                                                            "finished_at": datetime.now(timezone.utc)}])

    latest = store.latest_cells()
    planned = [r["cell_id"] for r in store.read("plan").to_pylist() if r["study"] == cfg.study]
    runs = cell_runs([cid for cid in planned if latest.get(cid, {}).get("status") != "done"])
    marked = []
    with get_client(sync_client=True) as client:
        for cid, run in runs.items():
            if run.state and not run.state.is_final() and crashed(cfg, cid, str(run.id)):
                client.set_flow_run_state(run.id, Crashed(message="the cell's worker died"), force=True)
                marked.append(cid)
    return marked


def retry(results: str, study: str | None = None, deployment: str = "study/study") -> tuple[list[str], str]:
    """Mark dead cell runs Crashed and submit the study again: only missing or failed cells run."""
    store = Store(results)
    raw = latest_config(store, study)
    cfg = parse_config(raw)
    mark_zombies(cfg, store)
    latest = store.latest_cells()
    todo = [r["label"] for r in store.read("plan").to_pylist()
            if r["study"] == cfg.study and latest.get(r["cell_id"], {}).get("status") != "done"]
    return todo, submit(raw, deployment)
