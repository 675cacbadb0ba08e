"""One cell of a study's grid, around the study's own `run_cell` (ftscope/studies/<kind>/cell.py): the
claim (a cell runs once, however many runs ask), its GPUs, its attempt row in `cells` (done, failed with why,
or not run), its checkpoint's life. Failures are recorded, never lost."""

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from ftscope import checkpoints, engines
from ftscope.grid import Cell, cell_spec
from ftscope.locks import annotate, exclusive
from ftscope.machine import runtime, versions
from ftscope.methods import RECIPES
from ftscope.models import load_model, load_tokenizer
from ftscope.progress import Progress, file_sink, progress_file
from ftscope.prompts import Prompter
from ftscope.records import Attempt, as_row
from ftscope.store import Store
from ftscope.studydata import StudyData
from ftscope.train.gpus import hold_gpus

log = logging.getLogger("ftscope.cell")


@dataclass(frozen=True)
class ModelContext:
    """What every cell of one base model shares: the data, the base checkpoint, the study's preparation
    of this model (Study K: its mastery levels), and what a cell computed of the base model for the next cells of
    this process (`kept`; Study K: its log-probabilities on the KL prompts)."""
    data: StudyData
    base_path: str  # as configured: hub id or local dir
    base_dir: str  # local safetensors checkpoint of the base model
    prep: Any = None
    kept: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass
class CellRun:
    """What a study's `run_cell` and a method's recipe see of the cell being run."""
    cfg: Any
    cell: Cell
    cid: str
    ctx: ModelContext
    store: Store
    parent_id: str | None = None
    gpus: list[int] | None = None
    progress: Progress = field(default_factory=lambda: Progress("cell"))
    added: dict[str, list[dict]] = field(default_factory=dict)  # rows measurements add (ftscope/measurements.py)
    training: tuple[list[dict], Any] | None = None  # (items, Dataset) the cell picked for a recipe that trains
    train_s: float | None = None  # how long `build` took

    def add(self, table: str, rows: list[dict]) -> None:
        """Rows for this cell's `table` (one file a cell), written with the study's own rows of it."""
        self.added.setdefault(table, []).extend(rows)

    def write(self, table: str, rows: list[dict]) -> None:
        """Write this cell's rows of `table`, with those measurements added to it."""
        self.store.write(table, self.cid, list(rows) + self.added.pop(table, []))

    @property
    def model_cfg(self):
        return self.cfg.model(self.cell.model)

    @property
    def params(self) -> dict:
        return dict(self.cell.params)

    @property
    def axes(self) -> dict:
        return dict(self.cell.axes)

    @property
    def data(self) -> StudyData:
        return self.ctx.data

    @property
    def prep(self):
        return self.ctx.prep

    @property
    def base_path(self) -> str:
        return self.ctx.base_path

    @property
    def base_dir(self) -> Path:
        return Path(self.ctx.base_dir)

    @property
    def work(self) -> Path:
        return checkpoints.cell_dir(self.cfg, self.cid)

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.base_path, self.model_cfg.trust_remote_code)

    def load(self, path: str | Path | None = None):
        """The base model (or the checkpoint at `path`) on this cell's devices."""
        m = self.model_cfg
        return load_model(str(path or self.base_path), m.dtype, m.trust_remote_code, self.gpus, m.use_safetensors)

    def prompter(self, dataset) -> Prompter:
        return Prompter(dataset.spec, self.model_cfg.prompt, self.tokenizer)

    def parent_checkpoint(self) -> Path:
        ckpt = checkpoints.checkpoint_of(self.cfg, self.parent_id)
        if not (ckpt / "config.json").exists():
            raise FileNotFoundError(f"checkpoint of parent cell {self.parent_id} ({self.cell.parent.label}) is "
                                    f"missing at {ckpt}; the parent cell must finish first")
        return ckpt


def run_cell(cfg, study, cell: Cell, cid: str, ctx: ModelContext, store: Store, parent_id: str | None = None,
             keep: bool = False, owner: dict | None = None) -> dict:
    """Run one cell and write its rows, holding its claim: a second run of the same study waits for the
    first, then finds the cell done and skips it. On failure, write a failed `cells` row and re-raise.
    `keep`: leave its checkpoint for cells that start from it. `owner`: recorded in the claim."""
    with exclusive(checkpoints.claim_of(cfg, cid), owner=owner):
        latest = (store.attempts(cid) or [None])[-1]  # its latest attempt decides: a damaged one is redone
        needed = keep and not checkpoints.available(cfg, cid)  # a child needs the checkpoint, released since
        if latest is not None and latest["status"] == "done" and not needed:
            log.info("[%s] already done (by another run): skipped", cell.label)
            return latest
        return _run(cfg, study, cell, cid, ctx, store, parent_id, keep)


def attempt_row(cfg, study, cell: Cell, cid: str, parent_id: str | None) -> dict:
    """The fields of a `cells` row that say which cell it is and with what it ran."""
    return {"cell_id": cid, "study": cfg.study, "kind": cfg.kind, "model": cell.model,
            "method": RECIPES.get(cell.method).name, "variant": cell.variant, "axes": json.dumps(dict(cell.axes)),
            "params": json.dumps(dict(cell.params)), "seed": cell.seed, "parent_cell": parent_id,
            "config": json.dumps(cell_spec(cfg, study, cell)), "started_at": datetime.now(timezone.utc),
            "versions": versions(), "train_s": None, "eval_s": None,
            "engine": json.dumps(engines.identity(cfg, cfg.model(cell.model)))}


def record_not_run(cfg, study, planned, unfit: dict, store: Store) -> dict[str, str]:
    """Record the planned cells the prepared data cannot run (`study.checks.unfit`: {Cell: why}) as `not_run` attempts,
    once per reason; returns {cell id: why}. They are shown by `status` and the report, and never run."""
    out = {}
    for p in planned:
        if (why := unfit.get(p.cell)) is None:
            continue
        out[p.cid] = why
        latest = (store.attempts(p.cid) or [None])[-1]
        if latest is None or latest["status"] != "not_run" or latest["error"] != why:
            row = {**attempt_row(cfg, study, p.cell, p.cid, p.parent_id), "status": "not_run", "error": why}
            _finish(store, row, time.monotonic())
    return out


def _run(cfg, study, cell: Cell, cid: str, ctx: ModelContext, store: Store, parent_id: str | None, keep: bool) -> dict:
    t0 = time.monotonic()
    row = attempt_row(cfg, study, cell, cid, parent_id)
    try:
        with hold_gpus(cfg.model(cell.model).gpus, what=f"cell {cell.label}") as gpus:
            row.update(runtime(gpus))
            progress = Progress(cell.label, sinks=(file_sink(progress_file(checkpoints.claim_of(cfg, cid))),))
            run = CellRun(cfg, cell, cid, ctx, store, parent_id, gpus, progress)
            run.work.mkdir(parents=True, exist_ok=True)
            t = time.monotonic()
            study.run_cell(run)
            for table in list(run.added):  # what measurements added to tables the study did not write
                run.write(table, [])
            row["train_s"] = run.train_s
            row["eval_s"] = time.monotonic() - t - (run.train_s or 0)
            checkpoints.finish(run, keep=keep or cfg.keep_checkpoints)
            progress.finish()
        row.update(status="done", error=None)
    except Exception as e:
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        annotate(checkpoints.claim_of(cfg, cid), error=row["error"][:1000], failed_at=time.time())
        try:
            _finish(store, row, t0)
        except OSError as write_error:  # a full disk: the claim still says why the cell failed
            e.add_note(f"its failed row could not be written to the store either: {write_error}")
        e.add_note(traceback.format_exc(limit=3))
        raise
    _finish(store, row, t0)
    return row


def _finish(store: Store, row: dict, t0: float) -> None:
    row.update(finished_at=datetime.now(timezone.utc), duration_s=time.monotonic() - t0)
    store.write("cells", f"{row['cell_id']}-{row['finished_at']:%Y%m%dT%H%M%S%f}", [as_row(Attempt(**row))])
