"""Parameter-level analysis of Study K, streamed tensor by tensor from safetensors checkpoints.

change = |θ_ft − θ_base| / (|θ_base| + 1e-8) per element (or the absolute difference; or `relative_nonzero`,
the relative change with exact-zero base weights scored 0: a dequantized GGUF model has thousands of them, and
their |d| / 1e-8 would fill every top-k and "undo" the whole change when restored). A global
top-k% over billions of elements cannot be sorted in memory, so `select_top` finds the exact k-th
largest score from histograms refined pass by pass until the boundary bin is small, then sorts that
bin alone. Peak memory is a few times the largest tensor plus the boundary bin.
"""

import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict

from ftscope.shards import iter_pairs, numel, tensor_names

_LAYER = re.compile(r"\.layers\.(\d+)\.")
_MATRIX = re.compile(r"\.(q|k|v|o|gate|up|down)_proj\.weight$")
REGIONS = {
    "transformer": re.compile(r"\.layers\.\d+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.weight$"),
    "attention": re.compile(r"\.layers\.\d+\.self_attn\.(q|k|v|o)_proj\.weight$"),
    "mlp": re.compile(r"\.layers\.\d+\.mlp\.(gate|up|down)_proj\.weight$"),
    "all": re.compile(r".*"),
}
TOP_SHARES = (1, 5, 10)
IN_MEMORY = 1 << 28  # a region up to this many elements keeps its changes in memory (1 GiB) for the top-k passes
Measure = Literal["relative", "absolute", "relative_nonzero"]
MEASURES = {"relative": "relative change |d|/(|θ|+1e-8)", "absolute": "absolute change |d|",
            "relative_nonzero": "relative change |d|/(|θ|+1e-8), exact-zero base weights scored 0"}


class ParamsConfig(BaseModel):
    """Study K's `params:` section: the region of the model and relative or absolute change."""
    model_config = ConfigDict(extra="forbid")
    region: Literal["transformer", "attention", "mlp", "all"] = "transformer"
    measure: Measure = "relative"


def region_names(ckpt: Path, region: str) -> list[str]:
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; regions: {sorted(REGIONS)}")
    return sorted(n for n in tensor_names(ckpt) if REGIONS[region].search(n))


def matrix_of(name: str) -> tuple[str, int]:
    """('q'..'down' or 'other', layer index or -1)."""
    m, layer = _MATRIX.search(name), _LAYER.search(name)
    return (m.group(1) if m else "other"), (int(layer.group(1)) if layer else -1)


def change(base: torch.Tensor, ft: torch.Tensor, measure: str = "relative") -> torch.Tensor:
    base, ft = base.float(), ft.float()
    diff = (ft - base).abs()
    if measure == "absolute":
        return diff
    relative = diff / (base.abs() + 1e-8)
    return relative.masked_fill_(base == 0, 0.0) if measure == "relative_nonzero" else relative


@dataclass(frozen=True)
class Selection:
    """The k largest scores: every score > threshold, plus the first `ties` equal to it in stream order."""
    k: int
    threshold: float
    ties: int
    top_sum: float  # sum of the k selected scores


def select_top(scores: Callable[[], Iterator[torch.Tensor]], k: int, bins: int = 4096,
               max_exact: int = 4_000_000) -> Selection:
    """Exact global top-k over a stream of score tensors, in a few streaming passes."""
    return select_tops(scores, [k], bins, max_exact)[0]


def select_tops(scores: Callable[[], Iterator[torch.Tensor]], ks: list[int], bins: int = 4096,
                max_exact: int = 4_000_000) -> list[Selection]:
    """Exact global top-k for each k of `ks`, sharing the streaming passes: each k narrows its own window, and
    every pass over the stream serves all of them (the top 1, 5 and 10% of a 7B model: one series of passes, not
    three). The arithmetic of each k is that of selecting it alone."""
    n = lo0 = hi0 = None
    for s in scores():
        n = (n or 0) + s.numel()
        lo0 = s.min().item() if lo0 is None else min(lo0, s.min().item())
        hi0 = s.max().item() if hi0 is None else max(hi0, s.max().item())
    out: dict[int, Selection] = {}
    live: dict[int, list] = {}  # index in ks -> [k, lo, hi]
    for i, k in enumerate(ks):
        if k <= 0 or n is None:
            out[i] = Selection(0, float("inf"), 0, 0.0)
        elif lo0 == hi0:  # every score is the same (a model compared with itself): no histogram can split them
            out[i] = Selection(min(k, n), lo0, min(k, n), min(k, n) * lo0)
        else:
            live[i] = [min(k, n), lo0, hi0]
    narrowing = dict(live)
    # Narrow each k's [lo, hi] to one histogram bin at a time until the bin that holds its k-th score is small.
    while narrowing:
        acc = {i: [0, 0, torch.zeros(bins, dtype=torch.long)] for i in narrowing}  # above, in window, counts
        for s in scores():
            for i, (_, lo, hi) in narrowing.items():
                a = acc[i]
                a[0] += int((s > hi).sum())
                w = s[(s >= lo) & (s <= hi)]
                a[1] += w.numel()
                if hi > lo:
                    a[2] += torch.bincount(_bin(w, lo, hi, bins), minlength=bins)
        for i in list(narrowing):
            k, lo, hi = narrowing[i]
            n_above, n_window, counts = acc[i]
            if n_window <= max_exact or hi <= lo or not _finite(lo, hi):
                del narrowing[i]
                continue
            above = n_above + counts.flip(0).cumsum(0)  # scores in this bin or higher ones, per bin from the top
            b = bins - 1 - int(torch.searchsorted(above, torch.tensor(k)))
            width = (hi - lo) / bins
            new_lo, new_hi = lo + b * width, lo + (b + 1) * width
            if not (lo < new_lo or new_hi < hi):
                del narrowing[i]
                continue
            narrowing[i] = live[i] = [k, new_lo, new_hi]
    # Final pass: exact counts above each window, the window's scores sorted.
    final = {i: [0, 0.0, []] for i in live}
    for s in scores():
        for i, (_, lo, hi) in live.items():
            f = final[i]
            gt = s > hi
            f[0] += int(gt.sum())
            f[1] += float(s[gt].double().sum())
            f[2].append(s[(s >= lo) & (s <= hi)])
    for i, (k, lo, hi) in live.items():
        n_above, above_sum, window = final[i]
        top_window = torch.cat(window).double().sort(descending=True).values[: k - n_above]
        threshold = float(top_window[-1]) if len(top_window) else hi
        ties = int((top_window == threshold).sum())
        out[i] = Selection(k, threshold, ties, above_sum + float(top_window.sum()))
    return [out[i] for i in range(len(ks))]


def _bin(x: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    return ((x.double() - lo) / (hi - lo) * bins).long().clamp_(0, bins - 1)


def _finite(*xs: float) -> bool:
    return all(abs(x) != float("inf") for x in xs)


def select_mask(score: torch.Tensor, sel: Selection, ties_left: int) -> tuple[torch.Tensor, int]:
    """Elements of one tensor in the selection; ties are taken in stream order until used up."""
    mask = score > sel.threshold
    if ties_left > 0:
        eq = (score == sel.threshold).flatten().nonzero().squeeze(1)[:ties_left]
        mask.view(-1)[eq] = True
        ties_left -= len(eq)
    return mask, ties_left


def change_stats(base: Path, ft: Path, region: str = "transformer", measure: str = "relative",
                 shares: tuple[int, ...] = TOP_SHARES, bins: int = 4096, max_exact: int = 4_000_000) -> list[dict]:
    """Rows for the `params` table: per matrix and layer, per matrix type, and the whole region with
    the share of its total change held by the top 1%, 5% and 10% of elements. `n_zero_base` counts
    elements whose base weight is exactly 0: under the relative measure their change is divided by
    1e-8, and a few of them can dominate the shares (see `zero_weight_warning`)."""
    names = region_names(ft, region)
    kept: list[torch.Tensor] | None = [] if numel(ft, names) <= IN_MEMORY else None

    def changes():
        if kept is not None:
            yield from kept
            return
        for _, b, f in iter_pairs(base, ft, names):
            yield change(b, f, measure).flatten()

    per: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for name, b, f in iter_pairs(base, ft, names):
        c = change(b, f, measure)
        if kept is not None:
            kept.append(c.flatten())
        acc = per[matrix_of(name)]
        acc[0] += c.numel()
        acc[1] += float(c.double().sum())
        acc[2] += int((b == 0).sum())
    rows = [_row("matrix", m, layer, *acc) for (m, layer), acc in sorted(per.items())]
    by_type: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for (m, _), acc in per.items():
        by_type[m] = [a + b for a, b in zip(by_type[m], acc)]
    rows += [_row("matrix_type", m, -1, *acc) for m, acc in sorted(by_type.items())]
    total = [sum(acc[i] for acc in per.values()) for i in range(3)]
    region_row = _row("region", "all", -1, *total)
    selections = select_tops(changes, [round(total[0] * p / 100) for p in shares], bins, max_exact)
    for p, sel in zip(shares, selections):
        region_row[f"top{p}_share"] = sel.top_sum / total[1] if total[1] > 0 else 0.0
    rows.append(region_row)
    return [{**r, "measure": measure, "region": region} for r in rows]


def zero_weight_warning(region_row: dict) -> str | None:
    """A warning when exact-zero base weights are likely to dominate the relative top-k shares."""
    n_zero, n = region_row["n_zero_base"], region_row["n_elements"]
    if region_row["measure"] != "relative" or not n_zero or region_row["top1_share"] is None:
        return None
    if n_zero >= 0.001 * n or region_row["top1_share"] > 0.99:
        return (f"{n_zero} of {n} base weights are exactly 0: their relative change |d|/(0+1e-8) is huge and "
                f"they may dominate the top-k shares (top 1%: {region_row['top1_share']:.2%}); consider "
                f"params.measure: absolute")
    return None


def _row(scope: str, matrix: str, layer: int, n: int, s: float, zeros: int) -> dict:
    return {"scope": scope, "matrix": matrix, "layer": layer, "n_elements": int(n), "n_zero_base": int(zeros),
            "sum_change": s, "mean_change": s / n if n else 0.0, "top1_share": None, "top5_share": None,
            "top10_share": None}


def strategy_scores(strategy: str, measure: str, seed: int):
    """Score function (name, base, ft) -> tensor whose top-k is what a strategy restores."""
    if strategy == "top":
        return lambda name, b, f: change(b, f, measure).flatten()
    if strategy == "bottom":
        return lambda name, b, f: -change(b, f, measure).flatten()
    if strategy == "random":
        def rand(name, b, f):
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            return torch.rand(b.numel(), generator=g, dtype=torch.float64)
        return rand
    raise ValueError(f"unknown restoration strategy {strategy!r}; use top, bottom or random")
