"""Parameter restoration of Study K: set the k% most-changed elements of a region (ranked globally,
not per matrix) back to their base values and write a new checkpoint, streaming shard by shard."""

from collections import defaultdict
from pathlib import Path

import torch

from ftscope.change import change, matrix_of, region_names, select_mask, select_top, strategy_scores
from ftscope.shards import ShardWriter, iter_pairs, numel, tensor_names


def restore(base: Path, ft: Path, out: Path, *, k_percent: float, strategy: str = "top",
            region: str = "transformer", measure: str = "relative", seed: int = 0,
            bins: int = 4096, max_exact: int = 4_000_000, max_shard_bytes: int = 1 << 30) -> list[dict]:
    """Write the restored checkpoint to `out`; one row per matrix type for the `restoration` table."""
    names = region_names(ft, region)
    score = strategy_scores(strategy, measure, seed)

    def scores():
        for name, b, f in iter_pairs(base, ft, names):
            yield score(name, b, f)

    sel = select_top(scores, round(numel(ft, names) * k_percent / 100), bins, max_exact)

    stats = defaultdict(lambda: {"n_elements": 0, "n_restored": 0, "change": 0.0, "undone": 0.0})
    writer, ties_left, in_region = ShardWriter(out, max_shard_bytes), sel.ties, set(names)
    all_names = sorted(tensor_names(ft))
    for name, b, f in iter_pairs(base, ft, all_names):
        if name not in in_region:
            writer.add(name, f)
            continue
        mask, ties_left = select_mask(score(name, b, f).view(f.shape), sel, ties_left)
        c = change(b, f, measure)
        st = stats[matrix_of(name)[0]]
        st["n_elements"] += f.numel()
        st["n_restored"] += int(mask.sum())
        st["change"] += float(c.double().sum())
        st["undone"] += float(c[mask].double().sum())
        writer.add(name, torch.where(mask, b.to(f.dtype), f))
    writer.close(ft)
    return [{"matrix": m, "n_elements": s["n_elements"], "n_restored": s["n_restored"],
             "fraction_restored": s["n_restored"] / s["n_elements"],
             "undone_share": s["undone"] / s["change"] if s["change"] > 0 else 0.0,
             "k_percent": k_percent, "strategy": strategy, "threshold": sel.threshold}
            for m, s in sorted(stats.items())]
