"""ftscope on a one-node cluster made of real parts: PostgreSQL, `prefect server start` on loopback,
process work pools and workers (each its own process group: a "node" that a SIGKILL of the group loses),
the deployments of prefect.yaml. The README's runbook runs as written; a sweep survives a node lost before
its job took any claim and, separately, the loss of the node hosting its study flow, with no human step,
and ends with every cell done once. A local run against the same server leaves its progress and table
artifacts on its flow run."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from servers import server_client

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


def _flow_runs(server, flow_name: str):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with server_client(server) as c:
        return c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200)


def _wait_final(server, run_id, timeout=900):
    """Block until the flow run is final (Prefect's own wait; the test itself never sleeps)."""
    import asyncio
    from uuid import UUID

    from prefect.flow_runs import wait_for_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["url"]}):
        return asyncio.run(wait_for_flow_run(UUID(run_id), timeout=timeout, poll_interval=2)).state



def _worker(server, tmp_path, name, kill_at: str | None = None, queues: tuple[str, ...] = ()):
    """A process worker as one node: its own process group (SIGKILL of the group = the node is lost)."""
    env = {**server["env"], "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_EXTRA_LOGGERS": "ftscope",
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    if kill_at:
        env["FTSCOPE_KILL_AT"] = kill_at
    log = open(tmp_path / f"worker-{name}.log", "w")
    cmd = [str(BIN / "prefect"), "worker", "start", "--pool", "ftscope", "--type", "process", "--name", name]
    for q in queues:
        cmd += ["--work-queue", q]
    return subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _kill(*procs):
    """Lose the nodes: each one's process group (a worker a script left in the background too) and every process
    it started (flow runs run in sessions of their own)."""
    from ftscope.faults import descendants

    for proc in procs:
        group = [pid for pid in (int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit())
                 if _pgid(pid) == proc.pid]
        doomed = [child for pid in group for child in descendants(pid)]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group is gone already
            pass
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


def _cluster_config(smoke_config, tmp_path, name, **over) -> Path:
    """configs/smoke-cluster.yaml's settings over the session's smoke config (its cache: no pretraining)."""
    cluster = yaml.safe_load((ROOT / "configs/smoke-cluster.yaml").read_text())
    fields = {k: v for k, v in cluster.items() if k not in ("extends", "study", "results_dir")}
    return _config(smoke_config, tmp_path, name, **{**fields, **over})


def _deploy(env):
    _sh([str(BIN / "prefect"), "--no-prompt", "work-pool", "create", "ftscope", "--type", "process", "--overwrite"], env)
    _sh([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)


def _follow(server, run_id: str):
    """The study run's state once it has ended, through the server's resumptions (ftscope's own wait)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cluster import wait

    with temporary_settings({PREFECT_API_URL: server["url"]}):
        return wait(run_id, poll_s=1, resume_s=240)


def _once_each(store, n: int):
    plan, latest = store.read("plan").to_pylist(), store.latest_cells()
    assert len(plan) == n and all(latest[r["cell_id"]]["status"] == "done" for r in plan)
    keys = [(r["cell_id"], r["domain"], r["slice"], r["metric"], r["prompt_map"], r["shots"])
            for r in store.read("metrics").to_pylist()]
    assert len(keys) == len(set(keys)) and {k[0] for k in keys} == {r["cell_id"] for r in plan}  # no duplicate rows
    return plan


def test_a_local_run_leaves_progress_table_and_summary_artifacts(prefect_server, smoke_config, smoke_base, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    path = _config(smoke_config, tmp_path, "artifacts-smoke")
    out = _sh([str(BIN / "ftscope"), "run", str(path)], prefect_server["env"], timeout=600)
    assert "report:" in out
    run = next(r for r in _flow_runs(prefect_server, "study") if r.parameters.get("config_path") == str(path))
    with server_client(prefect_server) as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    by_key = {a.key: a for a in sorted((a for a in arts if a.key), key=lambda a: a.created)}  # latest version
    assert by_key["artifacts-smoke-progress"].type == "progress" and float(by_key["artifacts-smoke-progress"].data) == 100
    table = by_key["artifacts-smoke-cells"]
    assert table.type == "table" and table.data.count("sandbox-tiny/level=") == 4
    assert "All planned cells are done" in by_key["artifacts-smoke-summary"].data
    status = _sh([str(BIN / "ftscope"), "status", str(tmp_path / "results")], prefect_server["env"])
    assert f"/flow-runs/flow-run/{run.id}" in status  # the run's Prefect link


def test_the_readme_runbook_runs(prefect_server, smoke_config, smoke_base, tmp_path):
    """The README's cluster runbook, block as written: pool, deployments, a worker, `submit --wait`, `status`.
    The smoke-cluster study's 8 cells (SFT + restoration) are 4 jobs and a preparation."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- runbook -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    path = _cluster_config(smoke_config, tmp_path, "runbook-smoke")
    env = {**prefect_server["env"], "config": str(path), "results": str(tmp_path / "results"), "TMPDIR": str(tmp_path),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # as in an activated virtual environment
    script = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = script.communicate(timeout=900)
    finally:
        _kill(script)  # and the worker it left running, as a node would
    log = tmp_path / "ftscope-worker.log"
    assert script.returncode == 0, out[-4000:] + (log.read_text()[-4000:] if log.exists() else "")
    assert "runbook-smoke: Completed" in out and "8 done, 0 failed, 0 missing" in out
    plan = _once_each(Store(str(tmp_path / "results")), 8)
    jobs = [r for r in _flow_runs(prefect_server, "cell") if any(t == f"cell:{plan[0]['cell_id']}" for t in r.tags)
            or set(r.tags) & {f"cell:{p['cell_id']}" for p in plan}]
    assert len(jobs) == 4 and all(len([t for t in r.tags if t.startswith("cell:")]) == 2 for r in jobs)
    assert any(r.name.startswith("prepare sandbox-tiny") for r in _flow_runs(prefect_server, "prepare"))


def test_a_sweep_survives_a_node_lost_before_its_claim_and_the_node_of_its_study(prefect_server, smoke_config,
                                                                                 smoke_base, tmp_path):
    env = prefect_server["env"]
    _deploy(env)
    over = {"grid": {"levels": [0, 4], "sample_counts": [8, 16], "methods": ["sft"]},
            "cluster": {"poll_s": 1, "start_timeout_s": 60, "lost_after_s": 60}}  # room for slow starts
    path = _cluster_config(smoke_config, tmp_path, "lost-nodes", **over)
    store = Store(str(tmp_path / "results"))
    # A. the node of the first cell jobs dies as soon as their processes start, before any claim
    study_node = _worker(prefect_server, tmp_path, "studies-a", queues=("studies",))
    bad = _worker(prefect_server, tmp_path, "bad", kill_at="cell:start:worker", queues=("default",))
    workers = [study_node, bad]
    try:
        out = _sh([str(BIN / "ftscope"), "submit", str(path)], env)
        run_id = re.search(r"flow-run/([0-9a-f-]+)", out).group(1)
        assert bad.wait(timeout=600) == -signal.SIGKILL
        workers.append(_worker(prefect_server, tmp_path, "good", queues=("default",)))  # the nodes left
        assert _follow(prefect_server, run_id).is_completed()
        _once_each(store, 4)
        lost = [r for r in _flow_runs(prefect_server, "cell") if r.state.name == "Crashed"
                and set(r.tags) & {f"cell:{p['cell_id']}" for p in store.read("plan").to_pylist()}]
        assert lost and any("never started" in (r.state.message or "") for r in lost), [r.state for r in lost]

        # B. the node hosting the study flow dies right after the study dispatched a job
        _kill(study_node)
        workers.append(_worker(prefect_server, tmp_path, "studies-b", kill_at="dispatch:cell:worker",
                               queues=("studies",)))
        path = _cluster_config(smoke_config, tmp_path, "lost-nodes", **{
            **over, "grid": {**over["grid"], "sample_counts": [8, 16, 12]}})
        out = _sh([str(BIN / "ftscope"), "submit", str(path)], env)
        run_id = re.search(r"flow-run/([0-9a-f-]+)", out).group(1)
        assert workers[-1].wait(timeout=600) == -signal.SIGKILL
        workers.append(_worker(prefect_server, tmp_path, "studies-c", queues=("studies",)))  # another live node
        state = _follow(prefect_server, run_id)  # no human: the server crashes and resumes the same run
        assert state.is_completed(), state
        with server_client(prefect_server) as c:
            assert c.read_flow_run(run_id).run_count == 2
        _once_each(store, 6)
        status = _sh([str(BIN / "ftscope"), "status", str(tmp_path / "results")], env)
        assert "6 done, 0 failed, 0 missing" in status
        out = _sh([str(BIN / "ftscope"), "retry", str(tmp_path / "results")], env)  # nothing left: a quick no-op
        assert "0 cells missing or failed" in out
        assert _wait_final(prefect_server, re.search(r"flow-run/([0-9a-f-]+)", out).group(1)).is_completed()
    finally:
        _kill(*workers)


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
