"""One cell of the grid: select data -> train -> evaluate -> write rows. Failures are recorded, not lost."""

import json
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
from ftscope.evaluate import accuracy_rows, answer_questions
from ftscope.grid import Cell, resolved_cell_config, select_training_items
from ftscope.models import load_model, load_tokenizer
from ftscope.store import Store
from ftscope.train.examples import build_examples
from ftscope.train.trainer import train, wrap_lora


@dataclass(frozen=True)
class CellContext:
    """What every cell of one base model shares: the data, the base checkpoint and its mastery levels."""
    items: list[dict]
    base_path: str
    levels: dict[str, int]  # item_id -> mastery level under this base model


def versions() -> str:
    import peft
    import transformers

    return json.dumps({"ftscope": __version__, "python": platform.python_version(), "torch": torch.__version__,
                       "transformers": transformers.__version__, "peft": peft.__version__})


def cell_dir(cfg: StudyConfig, cid: str) -> Path:
    return Path(cfg.artifacts_dir) / cfg.study / "cells" / cid


def run_cell(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, store: Store) -> dict:
    """Run one cell and write its rows; on failure write a failed `cells` row and re-raise."""
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    row = {"cell_id": cid, "study": cfg.study, "model": cell.model, "level": cell.level,
           "n_samples": cell.n_samples, "method": cell.method, "variant": "", "seed": cell.seed,
           "parent_cell": None, "config": json.dumps(resolved_cell_config(cfg, cell)), "started_at": started,
           "versions": versions(), "train_s": None, "eval_s": None}
    try:
        timings = _train_and_evaluate(cfg, cell, cid, ctx, store)
        row.update(status="done", error=None, **timings)
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


def _train_and_evaluate(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, store: Store) -> dict:
    model_cfg = next(m for m in cfg.models if m.name == cell.model)
    work = cell_dir(cfg, cid)
    work.mkdir(parents=True, exist_ok=True)
    train_items = select_training_items(ctx.items, ctx.levels, cell)

    t0 = time.monotonic()
    tok = load_tokenizer(ctx.base_path, model_cfg.trust_remote_code)
    model = load_model(ctx.base_path, model_cfg.dtype, model_cfg.trust_remote_code)
    examples = build_examples(train_items, model_cfg.prompt, tok, cfg.train.max_length)
    lr = cfg.lora.lr if cell.method == "lora" else cfg.train.lr
    if cell.method == "lora":
        model = wrap_lora(model, cfg.lora)
    torch.manual_seed(cell.seed)
    train(model, tok, examples, cfg.train, str(work / "trainer"), lr=lr, seed=cell.seed)
    if cell.method == "lora":
        model = model.merge_and_unload()
    model.eval()
    train_s = time.monotonic() - t0

    t0 = time.monotonic()
    test = [it for it in ctx.items if it["split"] == "test"]
    correct = answer_questions(model, tok, test, model_cfg.prompt, cfg.eval)
    store.write("metrics", cid, [{"cell_id": cid, **r} for r in accuracy_rows(test, correct, ctx.levels)])
    eval_s = time.monotonic() - t0

    if cfg.keep_checkpoints:
        model.save_pretrained(work / "model")
        tok.save_pretrained(work / "model")
    shutil.rmtree(work / "trainer", ignore_errors=True)
    if not cfg.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return {"train_s": train_s, "eval_s": eval_s}
