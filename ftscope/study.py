"""Study-level steps shared by the flow and the CLI: base models, mastery, and the plan of cells.

Each step is a plain function so the Prefect layer only adds policy (retries, caching, concurrency).
"""

import logging
import shutil
from dataclasses import dataclass

from ftscope.cell import cell_dir, checkpoint_of
from ftscope.config import ModelConfig, StudyConfig
from ftscope.data.prepare import StudyData
from ftscope.fingerprint import fingerprint, model_fingerprint
from ftscope.grid import Cell, cell_id, expand_grid
from ftscope.mastery import score_mastery
from ftscope.models import load_model, load_tokenizer
from ftscope.sandbox_model import build_sandbox_model
from ftscope.store import Store
from ftscope.train.gpus import hold_gpus

log = logging.getLogger(__name__)


def base_model_path(cfg: StudyConfig, model: ModelConfig, data: StudyData) -> str:
    """The base checkpoint: a hub id or local dir as given, or the (cached) pretrained sandbox model."""
    return build_sandbox_model(model.sandbox, data, cfg.cache_dir) if model.sandbox else model.path


def mastery_fingerprint(cfg: StudyConfig, model: ModelConfig, base_path: str, data: StudyData) -> str:
    """What mastery depends on: the checkpoint, the data, the scoring settings and the prompt."""
    return fingerprint([model_fingerprint(base_path), data.fingerprint, cfg.mastery.model_dump(),
                        model.prompt.model_dump()])


def ensure_mastery(cfg: StudyConfig, model: ModelConfig, base_path: str, data: StudyData, store: Store) -> dict[str, int]:
    """Mastery level of every scored item under this base model; computed once, then read from the store.
    Model entries that share a checkpoint and prompt (e.g. the same model under other launch settings)
    share the scores."""
    fp = mastery_fingerprint(cfg, model, base_path, data)
    key = f"{model.name}-{fp}"
    same = [k for k in store.keys("mastery") if k.endswith(f"-{fp}")]
    if not store.exists("mastery", key) and same:
        rows = store.read_key("mastery", same[0]).to_pylist()
        store.write("mastery", key, [{**r, "model": model.name} for r in rows])
    if not store.exists("mastery", key):
        tok = load_tokenizer(base_path, model.trust_remote_code)
        with hold_gpus(model.gpus) as gpus:
            lm = load_model(base_path, model.dtype, model.trust_remote_code, gpus)
            rows = score_mastery(lm, tok, data.items, model.prompt, cfg.mastery)
            del lm
        extra = {"model": model.name, "model_fp": model_fingerprint(base_path), "data_fp": data.fingerprint,
                 "n_map": cfg.mastery.n_map, "n_sample": cfg.mastery.n_sample, "temperature": cfg.mastery.temperature}
        store.write("mastery", key, [{**r, **extra} for r in rows])
        log.info("scored mastery of %d items for %s", len(rows), model.name)
    table = store.read_key("mastery", key)
    return dict(zip(table["item_id"].to_pylist(), table["level"].to_pylist()))


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    cid: str
    parent_id: str | None  # restore cells: the SFT cell whose checkpoint they edit


def plan_cells(cfg: StudyConfig, data: StudyData, base_paths: dict[str, str], store: Store) -> list[PlannedCell]:
    """Every cell with its id; the plan is written to the store so `status` can tell what is missing."""
    fps = {name: model_fingerprint(p) for name, p in base_paths.items()}
    cid = lambda c: cell_id(cfg, c, data.fingerprint, fps[c.model])  # noqa: E731
    cells = [PlannedCell(c, cid(c), cid(c.parent) if c.parent else None) for c in expand_grid(cfg)]
    rows = [{"cell_id": p.cid, "study": cfg.study, "label": p.cell.label, "model": p.cell.model, "level": p.cell.level,
             "n_samples": p.cell.n_samples, "method": p.cell.method, "seed": p.cell.seed} for p in cells]
    store.write("plan", cfg.study, rows)  # the latest plan of a study replaces the previous one
    return cells


def pending(cfg: StudyConfig, cells: list[PlannedCell], store: Store) -> list[PlannedCell]:
    """Cells not yet done (missing or failed), plus done SFT cells whose checkpoint a pending restore
    cell needs but which was already released: those train again (same seed, same result)."""
    latest = store.latest_cells()
    todo = {p.cid for p in cells if latest.get(p.cid, {}).get("status") != "done"}
    todo |= {p.parent_id for p in cells if p.cid in todo and p.parent_id
             and not (checkpoint_of(cfg, p.parent_id) / "config.json").exists()}
    return [p for p in cells if p.cid in todo]


def release_checkpoints(cfg: StudyConfig, cells: list[PlannedCell], store: Store) -> None:
    """Delete SFT checkpoints once every restore cell built on them is done (unless keep_checkpoints)."""
    if cfg.keep_checkpoints:
        return
    latest = store.latest_cells()
    children: dict[str, list[str]] = {}
    for p in cells:
        if p.parent_id:
            children.setdefault(p.parent_id, []).append(p.cid)
    for parent, kids in children.items():
        if all(latest.get(k, {}).get("status") == "done" for k in kids):
            shutil.rmtree(cell_dir(cfg, parent), ignore_errors=True)
