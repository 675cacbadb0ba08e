"""The real Study K flow on the smoke config: one cell fails at run time, the rest complete, and a
second run re-runs only the failed cell."""

import subprocess
import sys
from pathlib import Path

from flows.study import study
from ftscope.checkpoints import cell_dir
from ftscope.fingerprint import model_fingerprint
from ftscope.grid import cell_id
from ftscope.store import Store
from ftscope.studies import k

ROOT = Path(__file__).resolve().parents[1]


def _status(results_dir):
    return subprocess.run([sys.executable, "-m", "flows.cli", "status", results_dir], capture_output=True,
                          text=True, cwd=ROOT)


def test_failed_cell_is_reported_and_only_it_reruns(smoke_config, smoke_base, prefect_harness):
    cfg, data, base, _ = smoke_base
    cells = k.STUDY.grid(cfg)
    assert len(cells) == 4
    victim = cells[1]
    vid = cell_id(cfg, k.STUDY, victim, data.fingerprint_of(data.reads()), model_fingerprint(base))
    # A real run-time fault: a file sits where the cell's working directory must go.
    blocker = cell_dir(cfg, vid)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")

    state = study(config_path=smoke_config, return_state=True)
    assert state.is_failed()
    assert "1 of 4 cells failed" in state.message and victim.label in state.message
    store = Store(cfg.results_dir)
    latest = store.latest_cells()
    assert sorted(r["status"] for r in latest.values()) == ["done", "done", "done", "failed"]
    assert "FileExistsError" in latest[vid]["error"]
    assert set(store.read("metrics", done_only=True)["cell_id"].to_pylist()) == set(latest) - {vid}
    status = _status(cfg.results_dir)
    assert status.returncode == 1 and "failed" in status.stdout and "FileExistsError" in status.stdout

    blocker.unlink()
    state = study(config_path=smoke_config, return_state=True)
    assert state.is_completed()
    attempts = store.read("cells").to_pylist()
    assert sorted(r["cell_id"] for r in attempts).count(vid) == 2
    assert len(attempts) == 5  # 4 first attempts + the one re-run
    assert all(r["status"] == "done" for r in store.latest_cells().values())
    status = _status(cfg.results_dir)
    assert status.returncode == 0 and "4 done, 0 failed, 0 missing" in status.stdout

    acc = store.sql("SELECT count(*) FROM metrics WHERE slice = 'all'").fetchall()[0][0]
    assert acc == 8  # 4 cells x (id, ood)
