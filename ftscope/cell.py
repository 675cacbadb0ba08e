"""One cell of the grid: get the model (train, or restore a parent's checkpoint) -> evaluate -> KL
to the base model -> parameter change -> write rows. Failures are recorded, never lost."""

import json
import logging
import platform
import shutil
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from ftscope import __version__
from ftscope.config import StudyConfig
from ftscope.divergence import kl_rows, token_kl
from ftscope.evaluate import accuracy_rows, answer_questions
from ftscope.grid import Cell, resolved_cell_config, select_training_items
from ftscope.models import load_model, load_tokenizer
from ftscope.params import change_stats
from ftscope.restore import restore
from ftscope.store import Store
from ftscope.train.examples import build_examples
from ftscope.train.gpus import hold_gpus
from ftscope.train.launcher import launch
from ftscope.train.trainer import has_checkpoint, train, training_arguments, wrap_lora

log = logging.getLogger("ftscope.cell")


@dataclass(frozen=True)
class CellContext:
    """What every cell of one base model shares: the data, the base checkpoint and its mastery levels."""
    items: list[dict]
    base_path: str  # as configured: hub id or local dir
    base_dir: str  # local safetensors checkpoint of the base model
    levels: dict[str, int]  # item_id -> mastery level under this base model


def versions() -> str:
    import peft
    import transformers

    return json.dumps({"ftscope": __version__, "python": platform.python_version(), "torch": torch.__version__,
                       "transformers": transformers.__version__, "peft": peft.__version__})


def cell_dir(cfg: StudyConfig, cid: str) -> Path:
    return Path(cfg.artifacts_dir) / cfg.study / "cells" / cid


def checkpoint_of(cfg: StudyConfig, cid: str) -> Path:
    return cell_dir(cfg, cid) / "model"


def run_cell(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, store: Store,
             parent_id: str | None = None) -> dict:
    """Run one cell and write its rows; on failure write a failed `cells` row and re-raise."""
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    row = {"cell_id": cid, "study": cfg.study, "model": cell.model, "level": cell.level,
           "n_samples": cell.n_samples, "method": cell.method, "variant": cell.variant,
           "seed": cell.seed, "parent_cell": parent_id, "config": json.dumps(resolved_cell_config(cfg, cell)),
           "started_at": started, "versions": versions(), "train_s": None, "eval_s": None}
    try:
        with hold_gpus(cfg.model(cell.model).gpus) as gpus:
            row.update(status="done", error=None, **_work(cfg, cell, cid, ctx, store, parent_id, gpus))
    except Exception as e:
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        _finish(store, row, t0)
        e.add_note(traceback.format_exc(limit=3))
        raise
    _finish(store, row, t0)
    return row


def _finish(store: Store, row: dict, t0: float) -> None:
    row.update(finished_at=datetime.now(timezone.utc), duration_s=time.monotonic() - t0)
    store.write("cells", f"{row['cell_id']}-{row['finished_at']:%Y%m%dT%H%M%S%f}", [row])


def _work(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, store: Store, parent_id: str | None,
          gpus: list[int] | None) -> dict:
    model_cfg = cfg.model(cell.model)
    work = cell_dir(cfg, cid)
    work.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(ctx.base_path, model_cfg.trust_remote_code)
    test = [it for it in ctx.items if it["split"] == "test"]
    load = lambda path: load_model(path, model_cfg.dtype, model_cfg.trust_remote_code, gpus)  # noqa: E731

    t0 = time.monotonic()
    if cell.method == "base":
        model = kl_base = load(ctx.base_path)
    elif cell.method == "restore":
        model, kl_base = _restored(cfg, cell, cid, ctx, store, parent_id, load), load(ctx.base_path)
    else:
        model = _trained(cfg, cell, ctx, tok, work, load, gpus)
        kl_base = None if cell.method == "lora" else load(ctx.base_path)  # LoRA: the adapter switched off
    train_s = time.monotonic() - t0

    t0 = time.monotonic()
    per_item = token_kl(model, kl_base, tok, test, model_cfg.prompt, cfg.kl)
    store.write("kl", cid, [{"cell_id": cid, **r} for r in kl_rows(test, per_item, ctx.levels, cfg.kl)])
    del kl_base
    if cell.method == "lora":
        model = model.merge_and_unload()
    correct = answer_questions(model, tok, test, model_cfg.prompt, cfg.eval)
    store.write("metrics", cid, [{"cell_id": cid, **r} for r in accuracy_rows(test, correct, ctx.levels)])
    ckpt = Path(ctx.base_dir) if cell.method == "base" else work / "model"
    if not (ckpt / "config.json").exists():  # in-process training and LoRA merges; a worker already wrote SFT
        model.save_pretrained(ckpt)
        tok.save_pretrained(ckpt)
    del model
    rows = change_stats(Path(ctx.base_dir), ckpt, cfg.params.region, cfg.params.measure)
    store.write("params", cid, [{"cell_id": cid, **r} for r in rows])
    eval_s = time.monotonic() - t0

    shutil.rmtree(work / "trainer", ignore_errors=True)
    restore_later = cell.method == "sft" and "restore" in cfg.grid.methods
    if not (cfg.keep_checkpoints or restore_later):
        shutil.rmtree(work, ignore_errors=True)
    return {"train_s": train_s, "eval_s": eval_s}


def _trained(cfg: StudyConfig, cell: Cell, ctx: CellContext, tok, work: Path, load, gpus: list[int] | None):
    """Train in this process, or on several ranks with DeepSpeed ZeRO-3 through the launcher. A retried
    cell resumes from the last checkpoint its earlier attempt left in work/trainer."""
    model_cfg = cfg.model(cell.model)
    examples = build_examples(select_training_items(ctx.items, ctx.levels, cell), model_cfg.prompt, tok,
                              cfg.train.max_length)
    lr = cfg.lora.lr if cell.method == "lora" else cfg.train.lr
    resume = has_checkpoint(work / "trainer")
    shutil.rmtree(work / "model", ignore_errors=True)  # a half-written one from an earlier attempt
    if model_cfg.processes == 1:
        args = training_arguments(cfg.train, str(work / "trainer"), lr=lr, seed=cell.seed)
        model = load(ctx.base_path)
        if cell.method == "lora":
            model = wrap_lora(model, cfg.lora)
        torch.manual_seed(cell.seed)
        train(model, tok, examples, args, resume=resume)
        return model.eval()

    spec = {"base_path": ctx.base_path, "trust_remote_code": model_cfg.trust_remote_code, "dtype": model_cfg.dtype,
            "method": cell.method, "lora": cfg.lora.model_dump(), "train": cfg.train.model_dump(), "lr": lr,
            "seed": cell.seed, "examples": examples, "trainer_dir": str(work / "trainer"),
            "out_dir": str(work / ("adapter" if cell.method == "lora" else "model")),
            "deepspeed": str(Path(model_cfg.deepspeed).resolve()), "resume": resume}
    (work / "train_spec.json").write_text(json.dumps(spec))
    launch(["-m", "ftscope.train.worker", str(work / "train_spec.json")], nproc=model_cfg.processes,
           log_file=work / "train.log", timeout_s=model_cfg.timeout_s, gpus=gpus, launcher=model_cfg.launcher,
           on_line=lambda line: log.info("[%s] %s", cell.label, line))
    if cell.method == "lora":
        from peft import PeftModel

        return PeftModel.from_pretrained(load(ctx.base_path), str(work / "adapter")).eval()
    return load(str(work / "model"))


def _restored(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, store: Store, parent_id: str, load):
    parent_ckpt = checkpoint_of(cfg, parent_id)
    if not (parent_ckpt / "config.json").exists():
        raise FileNotFoundError(f"checkpoint of parent cell {parent_id} ({cell.parent.label}) is missing at "
                                f"{parent_ckpt}; the parent cell must finish first")
    out = cell_dir(cfg, cid) / "model"
    shutil.rmtree(out, ignore_errors=True)
    rows = restore(Path(ctx.base_dir), parent_ckpt, out, k_percent=cell.k_percent, strategy=cell.strategy,
                   region=cfg.params.region, measure=cfg.params.measure, seed=cell.seed)
    store.write("restoration", cid, [{"cell_id": cid, "parent_cell": parent_id, **r} for r in rows])
    return load(str(out))
