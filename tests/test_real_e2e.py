"""Both studies end to end on a real model (SmolLM2-135M-Instruct from its GGUF file, chat template, byte-level
BPE) with real facts (configs/smoke-real.yaml) and the sandbox suite (configs/smoke-real-g.yaml); a second run
gives the same rows bit for bit."""

from pathlib import Path

import yaml

from flows.study import study
from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESULT_TABLES = {"metrics": ["task", "dataset", "domain", "slice", "prompt_map", "shots", "metric", "n", "total", "value"],
                 "scores": ["dataset", "domain", "slice", "prompt_map", "shots", "metric", "item_id", "value", "prediction"],
                 "kl": ["dataset", "domain", "slice", "n", "n_positions", "value"],
                 "params": ["scope", "matrix", "layer", "n_elements", "n_zero_base", "mean_change", "sum_change",
                            "top1_share", "top5_share", "top10_share", "measure"]}


def _config(name: str, root: Path, cache: str, **over) -> str:
    raw = yaml.safe_load((ROOT / "configs" / name).read_text())
    raw.update(results_dir=str(root / "results"), artifacts_dir=str(root / "artifacts"), cache_dir=cache, **over)
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(yaml.safe_dump(raw))
    return str(root / name)


def _rows(store: Store, table: str, cid: str) -> list[tuple]:
    rows = [r for r in store.read(table, done_only=True).to_pylist() if r["cell_id"] == cid]
    return sorted(tuple(r[c] for c in RESULT_TABLES[table]) for r in rows)


def test_study_k_on_a_real_model_runs_and_a_second_run_gives_the_same_rows(real_model, prefect_harness, tmp_path):
    cache = str(Path(real_model).parents[1])
    first = _config("smoke-real.yaml", tmp_path / "first", cache)
    assert study(config_path=first, return_state=True).is_completed()
    store = Store(str(tmp_path / "first" / "results"))
    cells = {r["variant"]: r for r in store.latest_cells().values()}
    assert set(cells) == {"base", "sft", "lora", "restore-top5"} and {r["status"] for r in cells.values()} == {"done"}
    mastery = store.read("mastery").to_pylist()
    assert {r["n_map"] for r in mastery} == {21} and {r["domain"] for r in mastery} == {"id", "ood"}
    assert 0 < sum(r["r"] for r in mastery) < len(mastery)  # a real model knows some facts, not all
    region = next(r for r in store.read("params", done_only=True).to_pylist()
                  if r["cell_id"] == cells["sft"]["cell_id"] and r["scope"] == "region")
    assert region["measure"] == "relative_nonzero" and region["n_zero_base"] > 0 and region["top1_share"] < 0.99
    undone = [r["undone_share"] for r in store.read("restoration").to_pylist()]
    assert undone and max(undone) < 0.99  # restoring the top 5% does not "undo" everything through exact zeros
    predictions = [r["prediction"] for r in store.read("scores").to_pylist() if r["metric"] == "contains"]
    assert any(len(p.split()) > 3 for p in predictions)  # it answers in sentences, scored by containment

    # the same study again, from an empty store: the same mastery and the same rows for the cells it runs
    second = _config("smoke-real.yaml", tmp_path / "second", cache,
                     grid={**yaml.safe_load(Path(first).read_text())["grid"], "methods": ["base", "sft"]})
    assert study(config_path=second, return_state=True).is_completed()
    again = Store(str(tmp_path / "second" / "results"))
    key = ["item_id", "hits", "r", "level"]
    assert sorted(tuple(r[k] for k in key) for r in again.read("mastery").to_pylist()) == \
        sorted(tuple(r[k] for k in key) for r in mastery)
    for variant in ("base", "sft"):
        cid = cells[variant]["cell_id"]
        assert again.latest_cells()[cid]["status"] == "done"
        for table in RESULT_TABLES:
            assert _rows(again, table, cid) == _rows(store, table, cid), (variant, table)


def test_study_g_on_a_real_model_runs(real_model, prefect_harness, tmp_path):
    config = _config("smoke-real-g.yaml", tmp_path, str(Path(real_model).parents[1]))
    assert study(config_path=config, return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    cells = {r["variant"]: r for r in store.latest_cells().values()}
    assert set(cells) == {"icl", "sft", "fticl-1"} and {r["status"] for r in cells.values()} == {"done"}
    metrics = store.read("metrics", done_only=True).to_pylist()
    assert {r["domain"] for r in metrics} == {"in_domain", "cross_task", "untrained_task"}  # ICL on a task none trains
    assert {r["metric"] for r in metrics} == {"label_prob", "rouge_l"}
    assert {r["prompt_map"] for r in metrics} == {0, 1} and {r["shots"] for r in metrics} == {0, 1}
    assert all(0 <= r["value"] <= 1 for r in metrics)
