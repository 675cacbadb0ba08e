"""Streaming parameter statistics, top-k selection and restoration against in-memory exact results,
on a tiny model sharded into several safetensors files."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ftscope.change import REGIONS, change, change_stats, select_top
from ftscope.restoration import restore
from ftscope.shards import INDEX, shard_files


@pytest.fixture(scope="module")
def pair(tiny_llama, tmp_path_factory):
    """(base dir, fine-tuned dir): the fine-tuned model is the base plus heavy-tailed noise."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("pair")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.save_pretrained(root / "base", max_shard_size="40KB")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * torch.rand(p.shape, generator=g) ** 6 * 0.1)
    model.save_pretrained(root / "ft", max_shard_size="40KB")
    assert len(shard_files(root / "ft")) > 3
    return root / "base", root / "ft"


def _load(d):
    out = {}
    for f in shard_files(d):
        out.update(load_file(f))
    return out


def _region(sd, region="transformer"):
    return sorted(n for n in sd if REGIONS[region].search(n))


@pytest.mark.parametrize("scores", [
    torch.randn(5000).double(),
    torch.randint(0, 7, (5000,)).double(),  # heavy ties
    torch.rand(5000).double() ** 12,        # heavy tail near zero
])
@pytest.mark.parametrize("k", [0, 1, 37, 2500, 5000])
def test_select_top_is_exact(scores, k):
    chunks = list(scores.split(700))
    sel = select_top(lambda: iter(chunks), k, bins=8, max_exact=40)  # forces several refinement passes
    exact = scores.sort(descending=True).values[:k]
    assert sel.k == k and sel.top_sum == pytest.approx(float(exact.sum()), rel=1e-9, abs=1e-9)
    if k:
        assert sel.threshold == float(exact[-1])
        assert int((scores > sel.threshold).sum()) + sel.ties == k


def test_change_stats_match_in_memory(pair):
    base, ft = pair
    b, f = _load(base), _load(ft)
    names = _region(f)
    rows = change_stats(base, ft, bins=16, max_exact=100)
    allc = torch.cat([change(b[n], f[n]).flatten() for n in names]).double()
    region = next(r for r in rows if r["scope"] == "region")
    assert region["n_elements"] == allc.numel()
    assert region["sum_change"] == pytest.approx(float(allc.sum()), rel=1e-6)
    for p in (1, 5, 10):
        top = allc.sort(descending=True).values[: round(allc.numel() * p / 100)]
        assert region[f"top{p}_share"] == pytest.approx(float(top.sum() / allc.sum()), rel=1e-6)
    q0 = next(r for r in rows if r["scope"] == "matrix" and r["matrix"] == "q" and r["layer"] == 0)
    qc = change(b["model.layers.0.self_attn.q_proj.weight"], f["model.layers.0.self_attn.q_proj.weight"])
    assert q0["mean_change"] == pytest.approx(float(qc.double().mean()), rel=1e-6)
    assert {r["matrix"] for r in rows if r["scope"] == "matrix_type"} == {"q", "k", "v", "o", "gate", "up", "down"}


def test_restore_all_gives_back_base_exactly(pair, tmp_path):
    base, ft = pair
    rows = restore(base, ft, tmp_path / "r100", k_percent=100, bins=16, max_exact=100, max_shard_bytes=30_000)
    b, f, r = _load(base), _load(ft), _load(tmp_path / "r100")
    assert set(r) == set(f) and len(shard_files(tmp_path / "r100")) > 1
    for n in _region(f):
        assert torch.equal(r[n], b[n])
    for n in set(f) - set(_region(f)):  # outside the region: untouched fine-tuned weights
        assert torch.equal(r[n], f[n])
    assert all(row["fraction_restored"] == 1.0 and row["undone_share"] == pytest.approx(1.0) for row in rows)
    assert json.loads((tmp_path / "r100" / INDEX).read_text())["weight_map"]
    assert (tmp_path / "r100" / "config.json").exists()


@pytest.mark.parametrize("strategy", ["top", "bottom", "random"])
def test_restore_selects_exactly_k_percent_globally(pair, tmp_path, strategy):
    base, ft = pair
    restore(base, ft, tmp_path / "r", k_percent=5, strategy=strategy, bins=16, max_exact=100)
    b, f, r = _load(base), _load(ft), _load(tmp_path / "r")
    names = _region(f)
    restored = torch.cat([(r[n] != f[n]).flatten() for n in names])
    n_total = restored.numel()
    changed_back = int(restored.sum())
    assert changed_back <= round(n_total * 0.05)  # equal values cannot be told apart, others are restored
    if strategy == "top":
        allc = torch.cat([change(b[n], f[n]).flatten() for n in names])
        k = round(n_total * 0.05)
        top_idx = set(allc.topk(k).indices.tolist())
        assert set(restored.nonzero().squeeze(1).tolist()) <= top_idx
        assert changed_back >= k - int((allc == 0).sum())


def test_unknown_strategy_and_region_fail_clearly(pair, tmp_path):
    base, ft = pair
    with pytest.raises(ValueError, match="restoration strategy"):
        restore(base, ft, tmp_path / "x", k_percent=5, strategy="median")
    with pytest.raises(ValueError, match="unknown region"):
        change_stats(base, ft, region="heads")


def test_zero_base_weights_are_counted_and_flagged(tmp_path):
    """Exact-zero base weights make |d| / (|w| + 1e-8) huge: counted, and a warning names them."""
    from safetensors.torch import save_file

    from ftscope.change import zero_weight_warning

    g = torch.Generator().manual_seed(0)
    base = {f"model.layers.0.mlp.{m}_proj.weight": torch.randn(64, 64, generator=g) for m in ("up", "down")}
    base["model.layers.0.mlp.up_proj.weight"][0, :8] = 0.0
    ft = {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    for name, sd in (("base", base), ("ft", ft)):
        (tmp_path / name).mkdir()
        save_file(sd, str(tmp_path / name / "model.safetensors"))
    rows = change_stats(tmp_path / "base", tmp_path / "ft")
    region = next(r for r in rows if r["scope"] == "region")
    assert region["n_zero_base"] == 8
    assert next(r for r in rows if r["scope"] == "matrix_type" and r["matrix"] == "down")["n_zero_base"] == 0
    assert region["top1_share"] > 0.99 and "8 of 8192 base weights are exactly 0" in zero_weight_warning(region)
    absolute = next(r for r in change_stats(tmp_path / "base", tmp_path / "ft", measure="absolute")
                    if r["scope"] == "region")
    assert zero_weight_warning(absolute) is None
