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
               mastery={"n_map": 3, "n_sample": 4, "max_new_tokens": 4})
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / f"{name}.yaml")
    data = k.STUDY.load_data(cfg)
    path = base_model_path(cfg.models[0], data, cfg.cache_dir)
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
