"""The sandbox is a real knowledge testbed: mastery tracks exposure, and every level is usable."""

from collections import Counter

from scipy.stats import spearmanr

from ftscope.grid import capacity_problems
from ftscope.store import Store


def test_mastery_tracks_exposure(smoke_base):
    cfg, data, base, levels = smoke_base
    rows = Store(cfg.results_dir).read("mastery").to_pylist()
    assert len(rows) == len(data.items)
    rho = spearmanr([r["exposure"] for r in rows], [r["r"] for r in rows]).statistic
    assert rho >= 0.6, f"Spearman(R, exposure) = {rho:.2f}"
    never = [r["r"] for r in rows if r["exposure"] == 0]
    often = [r["r"] for r in rows if r["exposure"] == max(cfg.data.sandbox.exposures)]
    assert sum(never) / len(never) < 0.1 < 0.5 < sum(often) / len(often)


def test_every_level_holds_the_largest_sample_count_plus_test_items(smoke_base):
    cfg, data, base, levels = smoke_base
    all_levels = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"levels": [0, 1, 2, 3, 4, "mixed"]})})
    assert capacity_problems(all_levels, data.items, levels) == []
    test_levels = Counter(levels[it["item_id"]] for it in data.items if it["split"] == "test" and it["domain"] == "id")
    assert all(test_levels[lvl] > 0 for lvl in range(5)), test_levels
