"""Results, the one model of a study's numbers, on a hand-built store whose values are known: seed means,
Wilson's interval for one seed of a proportion and a bootstrap for several, the `all` slice as the union
of the per-level slices, and comparisons that pair only the items both arms scored."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from ftscope.report.results import Results, compare
from ftscope.stats import bootstrap_mean, paired_difference, wilson
from ftscope.store import Store

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
ITEMS = [f"item{i}" for i in range(10)]


def _cell(store, cid, method, seed, axes, study="toy", status="done", model="m"):
    store.write("plan", f"{study}-{cid}", [{"cell_id": cid, "study": study, "kind": "k", "label": cid, "model": "m",
                                           "method": method, "variant": method, "axes": json.dumps(axes),
                                           "seed": seed, "parent_cell": None}])
    store.write("cells", f"{cid}-1", [{"cell_id": cid, "study": study, "kind": "k", "model": model, "method": method,
                                       "variant": method, "axes": json.dumps(axes), "params": "{}", "seed": seed,
                                       "status": status, "started_at": NOW, "finished_at": NOW}])


def _scores(store, cid, values: dict[str, float]):
    """Per-item scores stored under each item's level slice (as Study K does), and the metrics rows."""
    level = {item: f"level={i % 2}" for i, item in enumerate(ITEMS)}
    store.write("scores", cid, [{"cell_id": cid, "task": "cbqa", "dataset": "d", "domain": "id", "slice": level[i],
                                 "prompt_map": 0, "shots": 0, "metric": "contains", "item_id": i, "value": v}
                                for i, v in values.items()])
    rows = []
    for sl in ("all", "level=0", "level=1"):
        vs = [v for i, v in values.items() if sl == "all" or level[i] == sl]
        rows.append({"cell_id": cid, "task": "cbqa", "dataset": "d", "domain": "id", "slice": sl, "prompt_map": 0,
                     "shots": 0, "metric": "contains", "n": len(vs), "total": sum(vs), "value": sum(vs) / len(vs)})
    store.write("metrics", cid, rows)


@pytest.fixture()
def store(tmp_path):
    s = Store(str(tmp_path))
    a0 = dict(zip(ITEMS, [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]))  # 6/10
    a1 = dict(zip(ITEMS, [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]))  # 7/10
    base = dict(zip(ITEMS[:8], [0, 0, 1, 0, 0, 1, 0, 0]))  # 2/8: two items never scored
    _cell(s, "sft0", "sft", 0, {"level": "4", "n": 8})
    _cell(s, "sft1", "sft", 1, {"level": "4", "n": 8})
    _cell(s, "base0", "base", 0, {})
    _cell(s, "gone", "sft", 2, {"level": "4", "n": 8}, status="failed")  # a failed cell never counts
    _cell(s, "other", "base", 0, {}, study="another-study")
    for cid, values in (("sft0", a0), ("sft1", a1), ("base0", base), ("other", base)):
        _scores(s, cid, {i: float(v) for i, v in values.items()})
    return s, a0, a1, base


def test_seed_means_and_their_intervals(store):
    s, a0, a1, base = store
    r = Results(s, "toy")
    assert set(r.cells) == {"sft0", "sft1", "base0"}  # done cells of this study's plan only
    sft = r.select(method="sft", slice="all")[0]
    assert sft.values == [0.6, 0.7] and sft.value == pytest.approx(0.65) and sft.seeds == 2
    per_item = [np.mean([a0[i], a1[i]]) for i in ITEMS]
    assert (sft.lo, sft.hi) == bootstrap_mean(per_item)  # several seeds: bootstrap over seed-averaged items
    b = r.select(method="base", slice="all")[0]
    assert (b.lo, b.hi) == wilson(2, 8) and b.n == 8  # one seed of a proportion: Wilson on the stored counts


def test_the_all_slice_is_the_union_of_the_levels(store):
    s, a0, *_ = store
    r = Results(s, "toy")
    sft = r.select(method="sft", slice="all")[0]
    assert sorted(r.item_values(sft)) == ITEMS  # scores were stored under level=0 / level=1 only
    odd = r.select(method="sft", slice="level=1")[0]
    assert sorted(r.item_values(odd)) == ITEMS[1::2]


def test_comparisons_pair_the_items_both_arms_scored(store):
    s, a0, a1, base = store
    r = Results(s, "toy")
    c = compare(r, "sft beats base", ("sft", r.select(method="sft", slice="all")),
                ("base", r.select(method="base", slice="all")))
    common = ITEMS[:8]
    expected = paired_difference([np.mean([a0[i], a1[i]]) for i in common], [base[i] for i in common])
    assert c.n == 8 and (c.diff, c.lo, c.hi) == expected and c.seeds == 1
    empty = compare(r, "nothing", ("sft", r.select(method="lora")), ("base", r.select(method="base")))
    assert empty.n == 0 and empty.verdict == "missing"


def test_a_study_name_is_bound_not_pasted_into_sql(store):
    s, *_ = store
    assert Results(s, "toy' OR '1'='1").cells == {}  # pasted, this would have matched every study
    assert set(Results(s, None).cells) == {"sft0", "sft1", "base0", "other"}


def test_base_model_replicas_are_pooled_with_a_bootstrap_over_base_models_then_items(tmp_path):
    """Two base models of one family (pretrained with other seeds): one condition of both, its interval from
    resampling base models and then items, and comparisons paired on the same base model and item."""
    from ftscope.stats import hierarchical_mean

    s = Store(str(tmp_path))
    config = {"models": [{"name": "m.s0", "family": "m"}, {"name": "m.s1", "family": "m"}]}
    s.write("runs", "r-completed", [{"run_id": "r", "study": "toy", "kind": "k", "status": "completed",
                                     "config": json.dumps(config), "started_at": NOW, "finished_at": NOW}])
    values = {}
    for base, shift in (("m.s0", 0), ("m.s1", 3)):
        for method, extra in (("sft", 1), ("base", 0)):
            cid = f"{method}-{base}"
            _cell(s, cid, method, 0, {"level": "4", "n": 8} if method == "sft" else {}, model=base)
            values[cid] = {item: float((i + shift + extra) % 2) for i, item in enumerate(ITEMS)}
            _scores(s, cid, values[cid])
    r = Results(s, "toy")
    sft = r.select(method="sft", slice="all")
    assert len(sft) == 1 and sft[0].model == "m" and sft[0].base_models == 2 and sft[0].seeds == 1
    groups = [list(values["sft-m.s0"].values()), list(values["sft-m.s1"].values())]
    assert (sft[0].lo, sft[0].hi) == hierarchical_mean(groups)[1:]
    c = compare(r, "sft beats base", ("sft", sft), ("base", r.select(method="base", slice="all")))
    diffs = [[values[f"sft-{b}"][i] - values[f"base-{b}"][i] for i in ITEMS] for b in ("m.s0", "m.s1")]
    assert c.base_models == 2 and c.n == len(ITEMS) and (c.diff, c.lo, c.hi) == hierarchical_mean(diffs)
