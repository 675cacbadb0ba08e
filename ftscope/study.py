"""Study-level steps shared by the flow and the CLI: base models, mastery, and the plan of cells.

Each step is a plain function so the Prefect layer only adds policy (retries, caching, concurrency).
"""

import logging

from ftscope.config import ModelConfig, StudyConfig
from ftscope.data.prepare import StudyData
from ftscope.fingerprint import fingerprint, model_fingerprint
from ftscope.grid import Cell, cell_id, expand_grid
from ftscope.mastery import score_mastery
from ftscope.models import load_model, load_tokenizer
from ftscope.sandbox_model import build_sandbox_model
from ftscope.store import Store

log = logging.getLogger(__name__)


def model_config(cfg: StudyConfig, name: str) -> ModelConfig:
    return next(m for m in cfg.models if m.name == name)


def base_model_path(cfg: StudyConfig, model: ModelConfig, data: StudyData) -> str:
    """The base checkpoint: a hub id or local dir as given, or the (cached) pretrained sandbox model."""
    return build_sandbox_model(model.sandbox, data, cfg.cache_dir) if model.sandbox else model.path


def mastery_key(cfg: StudyConfig, model: ModelConfig, base_path: str, data: StudyData) -> str:
    return f"{model.name}-{fingerprint([model_fingerprint(base_path), data.fingerprint, cfg.mastery.model_dump(), model.prompt.model_dump()])}"


def ensure_mastery(cfg: StudyConfig, model: ModelConfig, base_path: str, data: StudyData, store: Store) -> dict[str, int]:
    """Mastery level of every scored item under this base model; computed once, then read from the store."""
    key = mastery_key(cfg, model, base_path, data)
    if not store.exists("mastery", key):
        tok = load_tokenizer(base_path, model.trust_remote_code)
        lm = load_model(base_path, model.dtype, model.trust_remote_code)
        rows = score_mastery(lm, tok, data.items, model.prompt, cfg.mastery)
        extra = {"model": model.name, "model_fp": model_fingerprint(base_path), "data_fp": data.fingerprint,
                 "n_map": cfg.mastery.n_map, "n_sample": cfg.mastery.n_sample, "temperature": cfg.mastery.temperature}
        store.write("mastery", key, [{**r, **extra} for r in rows])
        log.info("scored mastery of %d items for %s", len(rows), model.name)
    table = store.read_key("mastery", key)
    return dict(zip(table["item_id"].to_pylist(), table["level"].to_pylist()))


def plan_cells(cfg: StudyConfig, data: StudyData, base_paths: dict[str, str], store: Store) -> list[tuple[Cell, str]]:
    """Every cell with its id; the plan is written to the store so `status` can tell what is missing."""
    fps = {name: model_fingerprint(p) for name, p in base_paths.items()}
    cells = [(c, cell_id(cfg, c, data.fingerprint, fps[c.model])) for c in expand_grid(cfg)]
    rows = [{"cell_id": cid, "study": cfg.study, "label": c.label, "model": c.model, "level": c.level,
             "n_samples": c.n_samples, "method": c.method, "seed": c.seed} for c, cid in cells]
    store.write("plan", cfg.study, rows)  # the latest plan of a study replaces the previous one
    return cells


def pending(cells: list[tuple[Cell, str]], store: Store) -> list[tuple[Cell, str]]:
    """Cells not yet done: missing ones and failed ones."""
    latest = store.latest_cells()
    return [(c, cid) for c, cid in cells if latest.get(cid, {}).get("status") != "done"]
