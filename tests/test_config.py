import subprocess
import sys
from pathlib import Path

import yaml

from ftscope.config import load_config
from ftscope.grid import Cell, cell_id
from ftscope.studies import STUDIES
from ftscope.validate import validate

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, **over):
    raw = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    raw.update(over)
    raw["results_dir"] = str(tmp_path / "res")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_shipped_configs_parse():
    for f in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(f)
        assert STUDIES.get(cfg.kind).grid(cfg), f


def test_validate_lists_every_problem(tmp_path):
    p = _write(tmp_path, grid={"levels": [0, 7], "sample_counts": [0], "methods": ["magic"]},
               models=[{"name": "m", "path": "./no/such/dir"}], train={"lr": -1})
    cfg, problems, _ = validate(str(p))
    assert cfg is None
    text = "\n".join(problems)
    for field in ("grid.levels", "grid.sample_counts", "grid.methods", "train.lr"):
        assert field in text, text


def test_validate_catches_missing_model_and_too_small_data(tmp_path):
    p = _write(tmp_path, models=[{"name": "m", "path": str(tmp_path / "missing")}],
               grid={"levels": [0], "sample_counts": [5000]})
    cfg, problems, notes = validate(str(p))
    assert any("no such local model directory" in x for x in problems)
    assert any("fewer than every sample count" in x for x in problems)
    assert any("grid: 2 cells (1 base, 1 sft)" in n for n in notes), notes


def test_cli_validate_exits_nonzero_with_reasons(tmp_path):
    p = _write(tmp_path, train={"epochs": 0})
    r = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(p)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "train.epochs" in r.stderr
    ok = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(ROOT / "configs/smoke.yaml")],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "grid: 4 cells" in ok.stdout


def test_cell_id_is_stable_and_sensitive(tmp_path):
    cfg = load_config(_write(tmp_path))
    k = STUDIES.get("k")
    c = Cell("sandbox-tiny", "sft", (("level", "0"), ("n", 8)), 0)
    assert cell_id(cfg, k, c, "d", "m") == cell_id(cfg, k, c, "d", "m")
    assert cell_id(cfg, k, c, "d", "m") != cell_id(cfg, k, c, "d2", "m")
    assert cell_id(cfg, k, c, "d", "m") != cell_id(cfg, k, Cell("sandbox-tiny", "sft", (("level", "0"), ("n", 16))),
                                                    "d", "m")
    cfg2 = cfg.model_copy(update={"study": "renamed"})
    assert cell_id(cfg, k, c, "d", "m") == cell_id(cfg2, k, c, "d", "m")
    # a base cell does not depend on the training settings
    base = Cell("sandbox-tiny", "base")
    cfg3 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": 0.5})})
    assert cell_id(cfg, k, base, "d", "m") == cell_id(cfg3, k, base, "d", "m")
    assert cell_id(cfg, k, c, "d", "m") != cell_id(cfg3, k, c, "d", "m")


def test_a_quantized_checkpoint_cannot_be_fully_fine_tuned(tmp_path, tiny_llama):
    import json
    import shutil

    quant = tmp_path / "quantized"
    shutil.copytree(tiny_llama, quant)
    config = json.loads((quant / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quant / "config.json").write_text(json.dumps(config))
    p = _write(tmp_path, models=[{"name": "q", "path": str(quant)}], grid={"levels": [4], "sample_counts": [8],
                                                                           "methods": ["base", "sft"]})
    _, problems, _ = validate(str(p))
    assert any("quantized (bitsandbytes 4-bit) and cannot be fully fine-tuned by sft" in x for x in problems), problems
    p = _write(tmp_path, models=[{"name": "q", "path": str(quant)}], grid={"levels": [4], "sample_counts": [8],
                                                                           "methods": ["base", "lora"]})
    assert not any("quantized" in x for x in validate(str(p))[1])


def test_training_items_are_capped_per_relation_with_the_seed():
    from ftscope.studies.k.data import _cap_train

    items = [{"item_id": f"{r}:{i}", "relation": r, "split": s} for r in ("P19", "P20") for i, s in
             enumerate(["train"] * 30 + ["test"] * 5)]
    capped = _cap_train(items, 10, seed=0)
    for r in ("P19", "P20"):
        assert sum(it["relation"] == r and it["split"] == "train" for it in capped) == 10
        assert sum(it["relation"] == r and it["split"] == "test" for it in capped) == 5
    assert capped == _cap_train(items, 10, seed=0) != _cap_train(items, 10, seed=1)
    assert [items.index(it) for it in capped] == sorted(items.index(it) for it in capped)  # order kept
    assert _cap_train(items, 100, seed=0) == items


def test_validate_says_what_the_plan_costs(tmp_path):
    p = _write(tmp_path, generation={"samples_per_second": 1000})
    cfg, problems, notes = validate(str(p))
    text = "\n".join(notes)
    assert not problems
    n_items = int(next(n for n in notes if n.startswith("data:")).split()[1].replace(",", ""))
    assert f"mastery {n_items:,} items x 21 phrasings x 10 samples = " in text
    from ftscope.costs import duration

    assert f"about {duration(n_items * 210 / 1000)} with hf at 1,000 samples/s (generation.samples_per_second)" in text
    assert "greedy answers and" in text and "tokens in the largest cell" in text
    _, _, notes = validate(str(_write(tmp_path)))
    assert any("no time estimate: set generation.samples_per_second or run `ftscope validate --calibrate`" in n
               for n in notes)
