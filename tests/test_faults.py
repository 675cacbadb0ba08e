"""Nothing lost, nothing done twice: `ftscope run` killed with SIGKILL during mastery scoring, during
training and between a store write and its rename, then run again, ends with a complete store, no
duplicate rows, no stray temporaries and no orphan Prefect server; two runs of one study at once train
each cell once."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from servers import gone

from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]
FTSCOPE = str(Path(sys.executable).parent / "ftscope")


def _config(smoke_config, tmp_path) -> Path:
    raw = yaml.safe_load(Path(smoke_config).read_text())  # the session's pretrained smoke model, reused
    raw.update(results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"))
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _our_servers() -> set[int]:
    """Temporary Prefect servers started by `ftscope run` (their PREFECT_HOME is an ftscope-prefect-* dir)."""
    out = set()
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if b"PREFECT_HOME=" in (data := env.read_bytes()) and b"ftscope-prefect-" in data and \
                    b"create_app" in (env.parent / "cmdline").read_bytes():
                out.add(int(env.parent.name))
        except OSError:
            pass
    return out



def test_killed_runs_lose_nothing_and_leave_nothing_behind(smoke_config, smoke_base, tmp_path):
    path = _config(smoke_config, tmp_path)
    before = _our_servers()
    for point in ("mastery", "train", "store:metrics"):
        r = subprocess.run([FTSCOPE, "run", str(path)], env={**os.environ, "FTSCOPE_KILL_AT": point},
                           capture_output=True, text=True, cwd=ROOT, timeout=900)
        assert r.returncode == -signal.SIGKILL, (point, r.stdout[-2000:], r.stderr[-2000:])
        orphans = _our_servers() - before
        assert all(gone(pid) for pid in orphans), f"temporary Prefect servers outlived a killed run: {orphans}"
    store = Store(str(tmp_path / "results"))
    assert list((tmp_path / "results" / ".staging").glob("*.tmp"))  # the write killed at its rename left one
    assert store.read("mastery").num_rows > 0  # scored before the training kill, kept

    r = subprocess.run([FTSCOPE, "run", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Error logging to API" not in r.stderr  # the last log lines were sent before the server stopped
    assert "leaked" not in r.stdout + r.stderr  # native objects were collected at exit (nanobind said it once)
    plan = store.read("plan").to_pylist()
    attempts = store.read("cells").to_pylist()
    assert sorted(a["cell_id"] for a in attempts if a["status"] == "done") == sorted(p["cell_id"] for p in plan)
    assert not [a for a in attempts if a["status"] != "done"]  # killed cells left no row at all
    metrics = [(m["cell_id"], m["domain"], m["slice"]) for m in store.read("metrics").to_pylist()]
    assert len(metrics) == len(set(metrics))
    items = store.read("mastery")["item_id"].to_pylist()
    assert len(items) == len(set(items))  # mastery stored once
    assert not list((tmp_path / "results" / ".staging").glob("*"))  # the dead writer's temporary was swept
    assert not list((tmp_path / "results").glob("*/*.tmp"))


def test_two_runs_of_one_study_train_each_cell_once(smoke_config, smoke_base, tmp_path):
    path = _config(smoke_config, tmp_path)
    runs = [subprocess.Popen([FTSCOPE, "run", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [o[-2000:] for o in outs]
    store = Store(str(tmp_path / "results"))
    attempts = store.read("cells").to_pylist()
    assert len(attempts) == len(store.read("plan")) == len({a["cell_id"] for a in attempts})  # one attempt each
    assert store.read("mastery").num_rows == len(set(store.read("mastery")["item_id"].to_pylist()))
