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

    # every line a rank printed reached the Prefect run logs (and the cell's train.log)
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        lines = [log.message for log in client.read_logs(limit=200, offset=0) if "tiny-zero3" in log.message]
    assert any("train_runtime" in line for line in lines), lines[-5:]
