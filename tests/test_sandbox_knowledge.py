"""The sandbox is a real knowledge testbed: mastery tracks exposure, and every level is usable."""

from collections import Counter

from scipy.stats import spearmanr

from ftscope.store import Store
from ftscope.studies.k import STUDY
from ftscope.studies.k.grid import unfit_cells


def test_mastery_tracks_exposure(smoke_base, k_items):
    cfg, data, base, levels = smoke_base
    rows = Store(cfg.results_dir).read("mastery").to_pylist()
    assert len(rows) == len(k_items)
    rho = spearmanr([r["exposure"] for r in rows], [r["r"] for r in rows]).statistic
    assert rho >= 0.6, f"Spearman(R, exposure) = {rho:.2f}"
    never = [r["r"] for r in rows if r["exposure"] == 0]
    often = [r["r"] for r in rows if r["exposure"] == max(cfg.data.options["exposures"])]
    assert sum(never) / len(never) < 0.1 < 0.5 < sum(often) / len(often)


def test_every_level_holds_the_largest_sample_count_plus_test_items(smoke_base, k_items):
    cfg, data, base, levels = smoke_base
    all_levels = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"levels": [0, 1, 2, 3, 4, "mixed"]})})
    assert unfit_cells(all_levels, STUDY.grid(all_levels), k_items, {cfg.models[0].name: levels}) == {}
    test_levels = Counter(levels[it["item_id"]] for it in k_items if it["split"] == "test" and it["domain"] == "id")
    assert all(test_levels[lvl] > 0 for lvl in range(5)), test_levels
