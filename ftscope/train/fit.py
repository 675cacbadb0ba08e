"""Train a cell's model on its examples: in this process, or on several ranks with DeepSpeed ZeRO-3
through the launcher. A retried cell resumes from the last checkpoint its earlier attempt left."""

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import torch

from ftscope.methods.recipe import Built
from ftscope.progress import relay
from ftscope.train.deepspeed import deepspeed_config
from ftscope.train.launcher import launch
from ftscope.train.lora import LoraConfig, wrap_lora
from ftscope.train.trainer import has_checkpoint, train, training_arguments

log = logging.getLogger("ftscope.cell")
# In-process training seeds torch's global RNG (model init of LoRA adapters, the Trainer's data order):
# two cells training at once in one process would draw from it in turn and change each other's result.
_IN_PROCESS = threading.Lock()


def owned(folder: Path) -> bool:
    """Only resume from trainer state this user wrote in the cell's own directory: DeepSpeed's resume
    unpickles it. Anything else there is removed, and training starts over."""
    uid = os.getuid()
    if all(f.stat().st_uid == uid for f in folder.rglob("*")):
        return True
    log.warning("%s holds files of another user: not resumed, removed", folder)
    shutil.rmtree(folder, ignore_errors=True)
    return False


def fit(run, examples: list[dict], *, lr: float, lora: LoraConfig | None = None) -> Built:
    """The fine-tuned model of `run` (a CellRun); LoRA when `lora` is given."""
    model_cfg, work = run.model_cfg, run.work
    resume = has_checkpoint(work / "trainer") and owned(work / "trainer")
    shutil.rmtree(work / "model", ignore_errors=True)  # a half-written one from an earlier attempt
    if model_cfg.processes == 1:
        args = training_arguments(run.cfg.train, str(work / "trainer"), lr=lr, seed=run.cell.seed)
        model = run.load()
        with _IN_PROCESS:  # results must not depend on which other cells run beside this one
            torch.manual_seed(run.cell.seed)
            if lora is not None:
                model = wrap_lora(model, lora)
            train(model, run.tokenizer, examples, args, resume=resume, progress=run.progress)
        return Built(model.eval(), base_view="adapter_off" if lora is not None else "load")

    out = work / ("adapter" if lora is not None else "model")
    spec = {"base_path": run.base_path, "trust_remote_code": model_cfg.trust_remote_code, "dtype": model_cfg.dtype,
            "use_safetensors": model_cfg.use_safetensors, "lora": lora.model_dump() if lora else None,
            "train": run.cfg.train.model_dump(), "lr": lr, "seed": run.cell.seed, "examples": examples,
            "trainer_dir": str(work / "trainer"), "out_dir": str(out),
            "deepspeed": str(deepspeed_config(model_cfg.deepspeed)), "resume": resume}
    (work / "train_spec.json").write_text(json.dumps(spec))
    launch(["-m", "ftscope.train.worker", str(work / "train_spec.json")], nproc=model_cfg.processes,
           log_file=work / "train.log", timeout_s=model_cfg.timeout_s, gpus=run.gpus, launcher=model_cfg.launcher,
           on_line=lambda line: relay(line, run.progress) or log.info("[%s] %s", run.cell.label, line))
    if lora is not None:
        from peft import PeftModel  # deferred: peft takes seconds to import; only LoRA cells need it

        return Built(PeftModel.from_pretrained(run.load(), str(out)).eval(), base_view="adapter_off")
    return Built(run.load(out), checkpoint=out)
