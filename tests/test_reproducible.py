"""Same config, same machine, empty caches: the same world, the same pretrained weights, the same
mastery scores."""

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from ftscope.config import load_config
from ftscope.models import base_model_path
from ftscope.store import Store
from ftscope.studies import k

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"seed": 3, "facts_per_id_relation": 12, "facts_per_ood_relation": 3, "format_facts_per_relation": 4,
         "exposures": [0, 2, 8], "n_cities": 20, "n_countries": 8, "n_people": 20}
TINY = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64, "epochs": 2, "batch_size": 32,
        "block_size": 32, "lr": 3.0e-3}


def _build(tmp_path, name):
    raw = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    raw.update(cache_dir=str(tmp_path / name / "cache"), results_dir=str(tmp_path / name / "results"),
               data={"dataset": "sandbox-k", "options": SMALL}, models=[{"name": "tiny", "sandbox": TINY}],
               mastery={"n_map": 3, "n_sample": 4, "max_new_tokens": 4},
               threads=torch.get_num_threads())  # pretraining and mastery: as many as OMP says
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / f"{name}.yaml")
    data = k.STUDY.load_data(cfg)
    path = base_model_path(cfg, cfg.models[0], data)
    k.STUDY.prepare(cfg, cfg.models[0], path, data, Store(cfg.results_dir))
    mastery = Store(cfg.results_dir).read("mastery").to_pylist()
    return data, load_file(next(Path(path).glob("*.safetensors"))), sorted(mastery, key=lambda r: r["item_id"])


def test_two_builds_from_empty_caches_are_identical(tmp_path):
    data_a, weights_a, mastery_a = _build(tmp_path, "a")
    data_b, weights_b, mastery_b = _build(tmp_path, "b")
    assert data_a.datasets["sandbox-k"].items == data_b.datasets["sandbox-k"].items
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[n], weights_b[n]) for n in weights_a)
    assert mastery_a == mastery_b and len(mastery_a) == len(data_a.datasets["sandbox-k"].items)
    assert len({r["hits"] for r in mastery_a}) > 1  # the scores vary over items: not a constant by accident


PROBE = '''
import hashlib, json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_reproducible import _build
import torch
from ftscope.reproducible import settle
from ftscope.config import load_config
_, weights, mastery = _build(Path({tmp!r}), {name!r})
cfg = load_config(Path({tmp!r}) / "{name}.yaml")
settle(cfg)
h = hashlib.sha256()
for n in sorted(weights):
    h.update(weights[n].numpy().tobytes())
print("PROBE", json.dumps({{"weights": h.hexdigest()[:16], "mastery": [r["hits"] for r in mastery],
                           "isa": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}}))
'''


def _probe(tmp_path, name: str, threads: int, env: dict) -> dict:
    """Pretraining and mastery of a tiny study in a fresh interpreter, with these variables set before torch
    is imported (as `ftscope run` sets them for a `reproducible: true` study)."""
    import json
    import os
    import subprocess
    import sys

    code = PROBE.format(tests=str(ROOT / "tests"), tmp=str(tmp_path), name=name)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**{k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                                                                 "ONEDNN_MAX_CPU_ISA")},
                            "OMP_NUM_THREADS": str(threads), **env})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(next(line for line in r.stdout.splitlines() if line.startswith("PROBE"))[6:])


def test_pinned_kernels_give_the_same_numbers_whatever_the_threads_and_the_isa_torch_would_pick(tmp_path):
    """Under the pins of `reproducible: true` (ATen, MKL in its strict mode and oneDNN at AVX2), one and two
    threads give the same pretrained weights (pretrained with that many threads) and mastery scores bitwise.
    Without the pins, a machine whose best kernels are another instruction set (AVX-512 here) computes other
    weights: the difference the pins remove between machines of one kind. (Pinning ATen alone was enough on the
    first machine this was measured on, not on a Xeon with AVX-512 FP16, where MKL without STRICT also gave other
    weights at 1 and 2 threads.)"""
    from ftscope.reproducible import pinned_env

    pins = pinned_env()
    one = _probe(tmp_path, "one", 1, pins)
    two = _probe(tmp_path, "two", 2, pins)
    native = _probe(tmp_path, "native", 2, {})
    assert one["threads"] == 1 and two["threads"] == 2
    assert one["weights"] == two["weights"] and one["mastery"] == two["mastery"]
    if native["isa"].lower() != pins["ATEN_CPU_CAPABILITY"]:
        assert native["weights"] != one["weights"], "the ISA no longer matters: update ftscope/reproducible.py"


SHARED = """
import threading
from types import SimpleNamespace
import torch
from ftscope.reproducible import shared_threads
before = torch.get_num_threads()
seen = []
with shared_threads(SimpleNamespace(threads=4), 3):
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    inside = torch.get_num_threads()
assert inside == 1 and seen == [1] and torch.get_num_threads() == before, (inside, seen, before)
with shared_threads(SimpleNamespace(threads=4), 2):
    assert torch.get_num_threads() == 2
assert torch.get_num_threads() == before
"""


def test_shared_threads_split_the_threads_among_tasks_and_give_them_back():
    """Preparations that run at once on the CPU share the torch threads (flows/study.py); a thread started inside
    computes with its share, and the count comes back afterwards. In a fresh interpreter: vLLM's CPU worker,
    once started in a process (the engine tests), turns torch.set_num_threads into a no-op there."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", SHARED], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]


def test_sandbox_models_pretrained_early_are_the_ones_the_flow_finds(tmp_path):
    """`ftscope run` starts pretraining while the Prefect server starts: the model lands where the flow's task looks
    (the same key), complete, and the task then only reads it."""
    from flows.cli import _pretrain_early
    from ftscope.sandbox.pretrain import pretrain_threads, sandbox_model_dir
    from ftscope.shards import checkpoint_problem

    raw = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    raw.update(cache_dir=str(tmp_path / "cache"), results_dir=str(tmp_path / "results"),
               data={"dataset": "sandbox-k", "options": SMALL}, models=[{"name": "tiny", "sandbox": TINY}])
    (tmp_path / "early.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "early.yaml")
    _pretrain_early(cfg).join()
    data = k.STUDY.load_data(cfg)
    built = sandbox_model_dir(cfg.models[0].sandbox, data, cfg.cache_dir, pretrain_threads(cfg))
    assert built.is_dir() and checkpoint_problem(built) is None
    made = built.stat().st_mtime_ns
    assert base_model_path(cfg, cfg.models[0], data) == str(built) and built.stat().st_mtime_ns == made
