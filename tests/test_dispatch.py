"""The study's wait for its dispatched runs: one watcher thread polls every run in flight with one API call, and
each waiting job gets its own run's final state, or Crashed once its run counts as lost."""

import threading
from types import SimpleNamespace


def test_one_watcher_gives_each_waiting_job_its_own_runs_end(prefect_harness, tmp_path, monkeypatch):
    from prefect import flow
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.states import Completed, Failed, Pending, Scheduled

    from tasks.dispatch import Watcher

    @flow
    def job():
        pass

    cfg = SimpleNamespace(artifacts_dir=str(tmp_path), cluster=SimpleNamespace(poll_s=0.05, start_timeout_s=0))
    with get_client(sync_client=True) as c:
        runs = [c.create_flow_run(job, name=f"job-{i}", state=Scheduled()) for i in range(6)]
    reads = []
    read = SyncPrefectClient.read_flow_runs
    monkeypatch.setattr(SyncPrefectClient, "read_flow_runs", lambda self, **kw: reads.append(kw) or read(self, **kw))
    watcher, ends = Watcher(), {}
    waiting = [threading.Thread(target=lambda r=r: ends.__setitem__(r.name, watcher.wait(cfg, r.id))) for r in runs]
    for t in waiting:
        t.start()
    with get_client(sync_client=True) as c:
        for i, r in enumerate(runs):  # done, failed, and one a worker took but never started (lost)
            c.set_flow_run_state(r.id, Pending() if i == 5 else Completed() if i % 2 == 0 else Failed(message="x"),
                                 force=True)
    for t in waiting:
        t.join(120)
    assert [ends[f"job-{i}"].type.value for i in range(6)] == ["COMPLETED", "FAILED"] * 2 + ["COMPLETED", "CRASHED"]
    assert "never started" in ends["job-5"].message
    with get_client(sync_client=True) as c:
        assert c.read_flow_run(runs[5].id).state.is_crashed()  # marked on the server too
    assert reads and all(len(kw["flow_run_filter"].id.any_) <= 6 for kw in reads)  # one call covers every run
