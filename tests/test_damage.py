"""Damage is found, named and repaired, never repeated: a truncated Parquet file in the store, a run that
says "running" after its process died, a killed pretraining's leftover, a cached model without its weights."""

import contextlib
import io
import socket
import subprocess
import sys

import yaml

from flows.cli import main
from flows.study import study
from ftscope.config import load_config
from ftscope.models import base_model_path
from ftscope.store import Store
from ftscope.studies import k


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def test_a_truncated_store_file_is_named_moved_aside_and_its_cell_redone(smoke_done, prefect_harness, tmp_path):
    path = smoke_done(tmp_path)  # a store the smoke study ran to the end in
    results = str(tmp_path / "results")
    store = Store(results)
    victim = sorted(store.done_cells())[1]
    f = tmp_path / "results" / "metrics" / f"{victim}.parquet"
    f.write_bytes(f.read_bytes()[:200])  # a crash or a full disk mid-write, by hand

    rc, out, err = _cli("status", results)
    assert rc == 1 and "1 damaged file(s) in the store: run `ftscope repair" in err
    rc, out, err = _cli("report", results)
    assert rc == 2 and str(f) in err and "ftscope repair" in err and "Traceback" not in err

    rc, out, err = _cli("repair", results)
    assert rc == 0 and f"cell {victim} is marked damaged" in out
    assert not f.exists() and len(list((tmp_path / "results" / ".quarantine" / "metrics").iterdir())) == 1
    rc, out, err = _cli("status", results)
    assert f"damaged {victim}" in out and "3 done" in out

    assert study(config_path=path, return_state=True).is_completed()
    attempts = {}
    for a in store.read("cells").to_pylist():
        attempts.setdefault(a["cell_id"], []).append(a["status"])
    assert sorted(attempts.pop(victim)) == ["damaged", "done", "done"]
    assert all(s == ["done"] for s in attempts.values())  # exactly the damaged cell ran again
    assert store.done_cells() == {r["cell_id"] for r in store.read("plan").to_pylist()}
    keys = [(r["cell_id"], r["domain"], r["slice"]) for r in store.read("metrics").to_pylist()]
    assert len(keys) == len(set(keys))


def test_a_run_whose_process_died_is_recorded_as_crashed(tmp_path):
    from datetime import datetime, timezone

    store = Store(str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    row = {"run_id": "r1", "study": "s", "kind": "k", "status": "running", "config": "{}", "host": socket.gethostname(),
           "pid": dead.pid, "started_at": datetime.now(timezone.utc), "finished_at": None}
    store.write("runs", "r1-running", [row])
    rc, out, err = _cli("status", str(tmp_path))
    assert "latest run: crashed (its process is gone)" in out
    rc, out, err = _cli("repair", str(tmp_path))
    assert "had died while running: recorded as crashed" in out
    assert [r["status"] for r in store.read("runs").to_pylist() if r["finished_at"]] == ["crashed"]


def test_a_killed_pretraining_leftover_is_swept_and_a_damaged_cached_model_rebuilt(tmp_path):
    from ftscope.damage import QUARANTINE
    from ftscope.sandbox.pretrain import pretrain_threads, sandbox_model_dir
    from ftscope.validate import validate

    raw = yaml.safe_load(open("configs/smoke.yaml"))
    raw.update(results_dir=str(tmp_path / "r"), artifacts_dir=str(tmp_path / "a"), cache_dir=str(tmp_path / "c"),
               models=[{"name": "tiny", "sandbox": {"hidden_size": 32, "layers": 1, "heads": 1, "intermediate_size": 32,
                                                    "epochs": 1}}])
    raw["data"]["options"].update(facts_per_id_relation=12, facts_per_ood_relation=2)
    raw["grid"]["sample_counts"] = [2]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    data = k.STUDY.load_data(cfg)
    model_dir = sandbox_model_dir(cfg.models[0].sandbox, data, cfg.cache_dir, pretrain_threads(cfg))
    model_dir.parent.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    leftover = model_dir.with_name(f".{model_dir.name}.{socket.gethostname()}.{gone.pid}.1.tmp")
    (leftover / "trainer").mkdir(parents=True)  # what a pretraining killed mid-way leaves

    assert base_model_path(cfg, cfg.models[0], data) == str(model_dir)
    assert not leftover.exists() and (model_dir / "model.safetensors").is_file()

    (model_dir / "model.safetensors").unlink()  # a cache that lost its weights
    _, problems, notes = validate(str(path))
    assert not problems and any(f"the cached sandbox model {model_dir} is damaged (no weights" in n for n in notes)
    assert base_model_path(cfg, cfg.models[0], data) == str(model_dir)
    assert (model_dir / "model.safetensors").is_file() and len(list((model_dir.parent / QUARANTINE).iterdir())) == 1
