"""The smoke study with every method (configs/smoke-methods.yaml): SFT, LoRA and restoration cells
run through the real flow, write KL / params / restoration rows, and re-runs reuse finished cells."""

from pathlib import Path

import yaml

from flows.study import study
from ftscope.checkpoints import cell_dir
from ftscope.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _variant(smoke_config, tmp_path, **over):
    raw = yaml.safe_load((ROOT / "configs/smoke-methods.yaml").read_text())
    raw.update(extends=smoke_config, results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "a"), **over)
    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_sft_lora_restore_cells(smoke_config, smoke_base, prefect_harness, tmp_path):
    cfg, *_ = smoke_base
    path = _variant(smoke_config, tmp_path)
    assert study(config_path=path, return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    cells = {r["variant"]: r for r in store.latest_cells().values()}
    assert set(cells) == {"base", "sft", "lora", "restore-top5", "restore-top100", "restore-random5",
                          "restore-random100"}
    assert all(r["status"] == "done" for r in cells.values())
    for table in ("metrics", "kl", "params", "scores"):
        assert set(store.read(table)["cell_id"].to_pylist()) == {r["cell_id"] for r in cells.values()}, table

    restoration = store.read("restoration").to_pylist()
    full = [r for r in restoration if r["k_percent"] == 100]
    assert full and all(r["fraction_restored"] == 1.0 for r in full)
    five = [r for r in restoration if r["k_percent"] == 5 and r["strategy"] == "top"]
    n, k = sum(r["n_elements"] for r in five), sum(r["n_restored"] for r in five)
    assert abs(k - round(n * 0.05)) <= 1
    assert all(r["parent_cell"] == cells["sft"]["cell_id"] for r in restoration)

    kl = {r["cell_id"]: r["value"] for r in store.read("kl").to_pylist() if r["slice"] == "all" and r["domain"] == "id"}
    assert abs(kl[cells["base"]["cell_id"]]) < 1e-6
    assert kl[cells["lora"]["cell_id"]] > 0 and kl[cells["sft"]["cell_id"]] > kl[cells["restore-top100"]["cell_id"]]
    region = {r["cell_id"]: r for r in store.read("params").to_pylist() if r["scope"] == "region"}
    assert region[cells["restore-top100"]["cell_id"]]["sum_change"] == 0.0 == region[cells["base"]["cell_id"]]["sum_change"]
    assert 0 < region[cells["sft"]["cell_id"]]["top1_share"] < region[cells["sft"]["cell_id"]]["top10_share"] <= 1
    # every restore cell is done, so the parent checkpoint is released (keep_checkpoints is off)
    assert not cell_dir(cfg.model_copy(update={"study": "smoke-methods", "artifacts_dir": str(tmp_path / "a")}),
                        cells["sft"]["cell_id"]).exists()

    # Re-running reuses everything; adding a k re-trains only the parent whose checkpoint was released.
    assert study(config_path=path, return_state=True).is_completed()
    assert store.read("cells").num_rows == 7
    path = _variant(smoke_config, tmp_path, restore={"k_percent": [5, 100, 20], "strategies": ["top", "random"]})
    assert study(config_path=path, return_state=True).is_completed()
    runs = [r["variant"] for r in sorted(store.read("cells").to_pylist(), key=lambda r: r["finished_at"])]
    assert sorted(runs[7:]) == ["restore-random20", "restore-top20", "sft"]
