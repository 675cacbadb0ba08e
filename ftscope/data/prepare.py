"""The study's items (and, for the sandbox, its corpus), built once and cached by fingerprint."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftscope.config import DataConfig
from ftscope.data.cbqa import load_entityquestions
from ftscope.data.sandbox import build_world
from ftscope.fingerprint import fingerprint


@dataclass(frozen=True)
class StudyData:
    fingerprint: str
    items: list[dict]
    documents: list[str]  # pretraining corpus; empty for real data

    def select(self, **where) -> list[dict]:
        return [it for it in self.items if all(it[k] == v for k, v in where.items())]


def data_fingerprint(cfg: DataConfig) -> str:
    spec = cfg.model_dump()
    if cfg.source == "entityquestions" and Path(cfg.path).exists():
        spec["files"] = {str(f): f.stat().st_size for f in sorted(Path(cfg.path).rglob("P*.json*"))}
    return fingerprint(spec)


def prepare_data(cfg: DataConfig, cache_dir: str) -> StudyData:
    fp = data_fingerprint(cfg)
    cached = Path(cache_dir) / "data" / f"{fp}.json"
    if cached.exists():
        blob = json.loads(cached.read_text())
        return StudyData(fp, blob["items"], blob["documents"])
    if cfg.source == "sandbox":
        world = build_world(**cfg.sandbox.model_dump(), id_relations=cfg.id_relations)
        items, documents = world.items, world.documents
    else:
        items, documents = load_entityquestions(cfg.path, cfg.id_relations), []
    items = _cap_tests(items, cfg.max_test_items)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps({"items": items, "documents": documents}))
    tmp.rename(cached)
    return StudyData(fp, items, documents)


def _cap_tests(items: list[dict], cap: int | None) -> list[dict]:
    if cap is None:
        return items
    rng = np.random.default_rng(0)
    keep = set()
    for domain in ("id", "ood"):
        idx = [i for i, it in enumerate(items) if it["split"] == "test" and it["domain"] == domain]
        keep.update(rng.permutation(idx)[:cap].tolist() if len(idx) > cap else idx)
    return [it for i, it in enumerate(items) if it["split"] == "train" or i in keep]
