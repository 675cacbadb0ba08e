"""The multi-process training path, on the CPU: torchrun + DeepSpeed ZeRO-3 over 2 gloo ranks."""

import json
import signal
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftscope.datasets import get
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.evaluate import predict
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import PromptConfig, Prompter
from ftscope.train.examples import build_examples
from ftscope.train.launcher import (
    CollectiveFailure,
    KilledBySignal,
    LaunchError,
    LaunchTimeout,
    OutOfMemory,
    classify,
    launch,
)
from ftscope.train.trainer import TrainConfig

CBQA = Prompter(get("entityquestions"), PromptConfig())

ROOT = Path(__file__).resolve().parents[1]
ITEMS = [{"item_id": f"P19:person{i}", "question": f"Where was person{i} born?", "answers": [f"city{i}"],
          "domain": "id", "split": "test"} for i in range(8)]


def _spec(tmp: Path, base: str, method: str = "sft", demos: list[dict] = ()) -> Path:
    tok = load_tokenizer(base)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "lr": 1e-2}
    spec = {"base_path": base, "trust_remote_code": False, "dtype": "float32", "lora": lora if method == "lora" else None,
            "train": TrainConfig(epochs=2, batch_size=2).model_dump(), "lr": 1e-2, "seed": 0,
            "examples": build_examples(ITEMS, CBQA, tok, 64, demos=demos), "trainer_dir": str(tmp / "trainer"),
            "out_dir": str(tmp / "trained"), "deepspeed": str(ROOT / "ftscope/train/deepspeed/zero3.json"), "resume": False}
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _weights(d):
    return load_file(next(Path(d).glob("*.safetensors")))


def test_zero3_on_two_cpu_ranks_gives_a_loadable_checkpoint(tiny_llama, tmp_path):
    lines = []
    launch(["-m", "ftscope.train.worker", str(_spec(tmp_path, tiny_llama))], nproc=2, log_file=tmp_path / "log",
           on_line=lines.append, timeout_s=300)
    assert any("train done in" in line for line in lines) and (tmp_path / "log").read_text()
    base, trained = _weights(tiny_llama), _weights(tmp_path / "trained")
    assert set(base) == set(trained)
    assert any(not torch.equal(base[k], trained[k]) for k in base)
    tok, model = load_tokenizer(str(tmp_path / "trained")), load_model(str(tmp_path / "trained"))
    assert len(predict(HFEngine(model, tok, HFOptions(), 65536), tok, CBQA, ITEMS, max_new_tokens=3)) == len(ITEMS)


def test_zero3_trains_fticl_examples_through_their_shared_prefix(tiny_llama, tmp_path):
    """Two forward passes a step under ZeRO-3 (the shared prefix once, then the rows on its cache) train and save."""
    spec = _spec(tmp_path, tiny_llama, demos=ITEMS[6:8])
    assert all(e["shared"] > 10 for e in json.loads(spec.read_text())["examples"])
    lines = []
    launch(["-m", "ftscope.train.worker", str(spec)], nproc=2, log_file=tmp_path / "log", on_line=lines.append,
           timeout_s=300)
    assert any("train done in" in line for line in lines)
    base, trained = _weights(tiny_llama), _weights(tmp_path / "trained")
    assert set(base) == set(trained) and any(not torch.equal(base[k], trained[k]) for k in base)


def test_two_launches_at_once_do_not_clash(tiny_llama, tmp_path):
    errors = []

    def run(i):
        d = tmp_path / str(i)
        d.mkdir()
        try:
            launch(["-m", "ftscope.train.worker", str(_spec(d, tiny_llama, "lora"))], nproc=2, log_file=d / "log",
                   on_line=lambda _: None, timeout_s=300)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(2):
        assert (tmp_path / str(i) / "trained" / "adapter_model.safetensors").exists()


def test_timeout_kills_the_process_group(tmp_path):
    script = tmp_path / "sleepy.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    with pytest.raises(LaunchTimeout, match="did not finish within 3 s") as err:
        launch([str(script)], nproc=2, log_file=tmp_path / "log", timeout_s=3, on_line=lambda _: None)
    assert not err.value.retriable


def test_a_crashing_rank_is_reported_with_its_last_lines(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import os, sys, time\nif os.environ['RANK'] == '1':\n    print('rank 1 cannot read its shard')\n"
                      "    sys.exit(3)\ntime.sleep(60)\n")
    with pytest.raises(LaunchError, match="exited with code 1") as err:
        launch([str(script)], nproc=2, log_file=tmp_path / "log", timeout_s=120, on_line=lambda _: None)
    assert "rank 1 cannot read its shard" in str(err.value) and "exitcode  : 3" in str(err.value)
    assert type(err.value) is LaunchError and not err.value.retriable


@pytest.mark.parametrize("rc,text,kind,retriable", [
    (1, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", OutOfMemory, False),
    (-9, "", KilledBySignal, True),
    (1, "Root Cause (first observed failure):\n  exitcode  : -9 (pid: 1)\n", KilledBySignal, True),
    (1, "Watchdog caught collective operation timeout: WorkNCCL", CollectiveFailure, True),
    (1, "ValueError: bad value (ProcessGroupGloo initialised)", LaunchError, False),
])
def test_exit_codes_map_to_clear_failures(rc, text, kind, retriable):
    err = classify(rc, [text], Path("x.log"))
    assert type(err) is kind and err.retriable is retriable
    if kind is KilledBySignal:
        assert signal.Signals.SIGKILL.name in str(err)
