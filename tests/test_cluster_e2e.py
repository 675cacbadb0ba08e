"""ftscope on a one-node cluster made of real parts: PostgreSQL, `prefect server start` on loopback, a
process work pool and worker, the deployments of prefect.yaml. A study submitted in cluster mode runs
every cell as its own flow run; a worker killed (SIGKILL) in the middle of a cell is noticed, and
`ftscope retry` completes the store with no duplicate or partial rows. A local run against the same
server leaves its progress and table artifacts on its flow run."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from servers import gone

from ftscope.locks import holder
from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _sh(args, env, timeout=300, cwd=ROOT):
    r = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _config(smoke_config, tmp_path, name, **over) -> Path:
    raw = yaml.safe_load(Path(smoke_config).read_text())  # the session's smoke cache: no pretraining again
    raw.update(study=name, results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"), **over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _client(server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Client:
        def __enter__(self):
            self.settings = temporary_settings({PREFECT_API_URL: server["url"]})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)
    return Client()


def _flow_runs(server, flow_name: str):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with _client(server) as c:
        return c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200)


def _wait_final(server, run_id, timeout=900):
    """Block until the flow run is final (Prefect's own wait; the test itself never sleeps)."""
    import asyncio
    from uuid import UUID

    from prefect.flow_runs import wait_for_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["url"]}):
        return asyncio.run(wait_for_flow_run(UUID(run_id), timeout=timeout, poll_interval=2)).state



def _worker(server, tmp_path, n, kill_at: str | None = None):
    env = {**server["env"], "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_EXTRA_LOGGERS": "ftscope"}
    if kill_at:
        env["FTSCOPE_KILL_AT"] = kill_at
    log = open(tmp_path / f"worker{n}.log", "w")
    return subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "ftscope", "--type", "process"],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_local_run_leaves_progress_table_and_summary_artifacts(prefect_server, smoke_config, smoke_base, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    path = _config(smoke_config, tmp_path, "artifacts-smoke")
    out = _sh([str(BIN / "ftscope"), "run", str(path)], prefect_server["env"], timeout=600)
    assert "report:" in out
    run = next(r for r in _flow_runs(prefect_server, "study") if r.parameters.get("config_path") == str(path))
    with _client(prefect_server) as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    by_key = {a.key: a for a in sorted((a for a in arts if a.key), key=lambda a: a.created)}  # latest version
    assert by_key["artifacts-smoke-progress"].type == "progress" and float(by_key["artifacts-smoke-progress"].data) == 100
    table = by_key["artifacts-smoke-cells"]
    assert table.type == "table" and table.data.count("sandbox-tiny/level=") == 4
    assert "All planned cells are done" in by_key["artifacts-smoke-summary"].data
    status = _sh([str(BIN / "ftscope"), "status", str(tmp_path / "results")], prefect_server["env"])
    assert f"/flow-runs/flow-run/{run.id}" in status  # the run's Prefect link


def test_cluster_sweep_survives_a_killed_worker(prefect_server, smoke_config, smoke_base, tmp_path):
    env = prefect_server["env"]
    _sh([str(BIN / "prefect"), "--no-prompt", "work-pool", "create", "ftscope", "--type", "process", "--overwrite"], env)
    _sh([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
    with _client(prefect_server) as c:
        assert {d.name for d in c.read_deployments()} >= {"study", "cell"}
    worker = _worker(prefect_server, tmp_path, 1)
    try:
        cluster = {"dispatch": "deployments", "workers": 4, "cluster": {"poll_s": 1}}
        path = _config(smoke_config, tmp_path, "cluster-smoke", **cluster)
        out = _sh([str(BIN / "ftscope"), "submit", str(path)], env)
        run_id = re.search(r"flow-run/([0-9a-f-]+)", out).group(1)
        assert _wait_final(prefect_server, run_id).is_completed()
        store = Store(str(tmp_path / "results"))
        plan = store.read("plan").to_pylist()
        assert len(plan) == 4 and all(r["status"] == "done" for r in store.latest_cells().values())
        assert len(store.latest_cells()) == 4 and set(store.read("metrics")["cell_id"].to_pylist()) == \
            {r["cell_id"] for r in plan}
        cell_runs = [r for r in _flow_runs(prefect_server, "cell")]
        assert sorted(t for r in cell_runs for t in r.tags if t.startswith("cell:")) == \
            sorted(f"cell:{r['cell_id']}" for r in plan)  # one flow run per cell

        # more cells, and the worker dies (SIGKILL: the worker and every run it started, as a lost node)
        # at the end of the first training epoch of a new cell
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        worker = _worker(prefect_server, tmp_path, 2, kill_at="train:worker")
        path = _config(smoke_config, tmp_path, "cluster-smoke", grid={"levels": [0, 4], "sample_counts": [8, 16, 12],
                                                                      "methods": ["sft"]}, **cluster)
        _sh([str(BIN / "ftscope"), "submit", str(path)], env)
        assert worker.wait(timeout=600) == -signal.SIGKILL
        claims = tmp_path / "artifacts" / "claims"
        killed = max(claims.glob("*.lock"), key=lambda f: f.stat().st_mtime).stem  # the cell that was running
        # the worker dies first, then the cell process that killed it: wait for that one to be gone
        if (owner := holder(claims / f"{killed}.lock")) is not None:
            assert gone(owner["pid"], timeout_s=60), f"the claim's owner {owner} is still alive"
        assert holder(claims / f"{killed}.lock") is None  # the kernel released the dead owner's claim
        assert store.latest_cells().get(killed) is None  # it wrote nothing final
        worker = _worker(prefect_server, tmp_path, 3)
        out = _sh([str(BIN / "ftscope"), "retry", str(tmp_path / "results")], env)
        assert "re-submitted" in out
        assert _wait_final(prefect_server, re.search(r"flow-run/([0-9a-f-]+)", out).group(1)).is_completed()

        plan = store.read("plan").to_pylist()
        latest = store.latest_cells()
        assert len(plan) == 6 and all(latest[r["cell_id"]]["status"] == "done" for r in plan)
        metrics = store.read("metrics").to_pylist()
        keys = [(r["cell_id"], r["domain"], r["slice"]) for r in metrics]
        assert len(keys) == len(set(keys)) and {k[0] for k in keys} == {r["cell_id"] for r in plan}
        assert not list((tmp_path / "results" / ".staging").glob("*"))  # no partial file left behind
        crashed = [r for r in _flow_runs(prefect_server, "cell") if f"cell:{killed}" in r.tags]
        assert any(r.state.name == "Crashed" for r in crashed) and any(r.state.is_completed() for r in crashed)
        status = _sh([str(BIN / "ftscope"), "status", str(tmp_path / "results")], env)
        assert "6 done, 0 failed, 0 missing" in status
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_server_answers_the_calls_its_ui_makes(prefect_server):
    """Prefect 3.9's server with the FastAPI it pins: the filter calls the UI sends, explicit nulls included (the
    422s that once needed a FastAPI cap of ftscope's own)."""
    import json as _json
    import urllib.request

    nulls = {"flows": None, "flow_runs": None, "task_runs": None, "deployments": None, "work_pools": None,
             "sort": None, "limit": 10, "offset": 0}
    calls = [("flow_runs/filter", nulls), ("task_runs/filter", nulls), ("deployments/filter", nulls),
             ("flows/filter", nulls), ("flow_runs/count", {k: v for k, v in nulls.items() if k not in ("limit", "offset")}),
             ("artifacts/filter", {"artifacts": None, "flow_runs": None, "task_runs": None, "sort": None, "limit": 10}),
             ("work_pools/filter", {"work_pools": None, "limit": 10, "offset": 0}),
             ("ui/flow_runs/history", {"history_start": "2026-01-01T00:00:00Z", "history_end": "2026-01-02T00:00:00Z",
                                       "history_interval_seconds": 3600, "flows": None, "flow_runs": None})]
    for path, body in calls:
        req = urllib.request.Request(f"{prefect_server['url']}/{path}", data=_json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, path


def test_a_kept_server_is_used_by_runs_and_keeps_their_history(smoke_config, smoke_base, tmp_path):
    """`ftscope server start` once; every `ftscope run` then reports to it (no temporary server), and the run
    history survives the run; `ftscope server stop` ends it."""
    from servers import free_port

    env = {**os.environ, "FTSCOPE_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    port = free_port()
    out = _sh([str(BIN / "ftscope"), "server", "start", "--port", str(port)], env, timeout=600)
    url = f"http://127.0.0.1:{port}/api"
    try:
        assert url in out
        path = _config(smoke_config, tmp_path, "kept-server")
        r = subprocess.run([str(BIN / "ftscope"), "run", str(path)], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0 and "temporary Prefect server" not in r.stderr, r.stderr[-2000:]
        runs = _flow_runs({"url": url}, "study")
        assert any(r.parameters.get("config_path") == str(path) and r.state.is_completed() for r in runs)
    finally:
        out = _sh([str(BIN / "ftscope"), "server", "stop"], env)
    assert f"stopped the Prefect server at {url}" in out
    assert "not running" in _sh([str(BIN / "ftscope"), "server", "status"], env)
