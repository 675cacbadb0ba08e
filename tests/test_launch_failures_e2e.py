"""Multi-process cells inside the real flow: a 2-rank ZeRO-3 cell completes, one times out, one
crashes (DeepSpeed rejects its config on every rank), and the rest of the grid completes. Neither
failure is retried."""

import json

import yaml

from flows.study import study
from ftscope.store import Store


def test_timeout_and_crash_are_reported_and_the_grid_completes(smoke_config, smoke_base, prefect_harness, tmp_path):
    cfg, *_ = smoke_base
    sandbox = cfg.models[0].sandbox.model_dump()
    bad_ds = tmp_path / "bad_zero3.json"
    bad_ds.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 3}))
    path = tmp_path / "launch.yaml"
    path.write_text(yaml.safe_dump({
        "extends": smoke_config, "study": "launch-failures", "results_dir": str(tmp_path / "results"),
        "models": [{"name": "tiny", "sandbox": sandbox},
                   {"name": "tiny-zero3", "sandbox": sandbox, "processes": 2},
                   {"name": "tiny-slow", "sandbox": sandbox, "processes": 2, "timeout_s": 2},
                   {"name": "tiny-bad-ds", "sandbox": sandbox, "processes": 2, "deepspeed": str(bad_ds)}],
        "grid": {"levels": [4], "sample_counts": [8], "methods": ["sft"]}}))

    state = study(config_path=str(path), return_state=True)
    assert state.is_failed() and "2 of 4 cells failed" in state.message
    store = Store(str(tmp_path / "results"))
    cells = {r["model"]: r for r in store.latest_cells().values()}
    assert cells["tiny"]["status"] == "done" and cells["tiny-zero3"]["status"] == "done"
    zero3 = cells["tiny-zero3"]["cell_id"]
    region = [r for r in store.read("params").to_pylist() if r["cell_id"] == zero3 and r["scope"] == "region"]
    assert region and region[0]["sum_change"] > 0  # the gathered ZeRO-3 checkpoint differs from the base
    assert {r["domain"] for r in store.read("metrics").to_pylist() if r["cell_id"] == zero3} == {"id", "ood"}
    assert cells["tiny-slow"]["status"] == "failed"
    assert cells["tiny-slow"]["error"].startswith("LaunchTimeout: training did not finish within 2 s")
    assert cells["tiny-bad-ds"]["status"] == "failed"
    assert cells["tiny-bad-ds"]["error"].startswith("LaunchError: training exited with code")
    assert "train_micro_batch_size_per_gpu" in cells["tiny-bad-ds"]["error"]  # the rank's own words
    assert len(store.read("cells")) == 4  # deterministic failures: no retries

    # what the ranks print reaches the Prefect run logs (and the cell's train.log)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    this_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    lines, offset = [], 0
    with get_client(sync_client=True) as client:  # the session's server holds other tests' logs too
        while page := client.read_logs(log_filter=this_run, limit=200, offset=offset):
            lines += [log.message for log in page if "tiny-zero3" in log.message]
            offset += len(page)
    rank_lines = [line for line in lines if "[training] train done" in line]
    assert len(rank_lines) == 1, lines[-5:]  # printed by the ranks' main process, once
