"""Uncertainty for every number ftscope reports: Wilson score intervals for proportions, bootstrap over
items for means (ROUGE-L, KL), paired bootstrap over the same items for differences, and the verdict a
comparison earns. Bootstraps are seeded: the same store gives the same intervals."""

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def bootstrap_mean(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean, resampling items."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_difference(a, b, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) over the same items (a[i] and b[i] score item i), with a 95% interval from
    resampling items, so that what the items share cancels out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"a paired difference needs the same items on both sides ({len(a)} vs {len(b)})")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(axis=1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def hierarchical_mean(groups, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, 95% low, high) of a mean over groups (base models) of the mean over their items: each bootstrap
    draw resamples the groups, then the items within each drawn group (afresh for each slot of the draw), so
    that the interval holds what changes with the base model as well as with the items. One group: a plain
    bootstrap over items."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    point = float(np.mean([g.mean() for g in groups]))
    picked = rng.integers(0, len(groups), size=(n_boot, len(groups))) if len(groups) > 1 else \
        np.zeros((n_boot, 1), dtype=int)
    means = np.empty(picked.shape)
    for gi, g in enumerate(groups):
        draws, slots = np.nonzero(picked == gi)
        step = max(1, (1 << 22) // len(g))  # item resamples in chunks of at most 4M indices
        for lo in range(0, len(draws), step):
            idx = rng.integers(0, len(g), size=(len(draws[lo:lo + step]), len(g)))
            means[draws[lo:lo + step], slots[lo:lo + step]] = g[idx].mean(axis=1)
    boots = means.mean(axis=1)
    return point, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def verdict(lo: float, hi: float, expected: int = 1) -> str:
    """'reproduced' when the interval excludes 0 on the expected side (expected = +1: the difference
    should be positive), 'contradicted' on the other side, else 'not distinguishable'."""
    if math.isnan(lo) or math.isnan(hi):
        return "missing"
    if lo > 0 or hi < 0:
        return "reproduced" if (lo > 0) == (expected > 0) else "contradicted"
    return "not distinguishable"


def seed_spread(values) -> tuple[float, float, int]:
    """(mean, standard deviation, number of seeds) of one number measured under several seeds."""
    x = np.asarray(values, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0, len(x)
