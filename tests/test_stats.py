"""Intervals against direct computations with scipy on known counts."""

import numpy as np
import pytest
from scipy import stats as sp

from ftscope.stats import bootstrap_mean, paired_difference, verdict, wilson


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (81, 200), (200, 200), (517, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = sp.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_bootstrap_mean_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(1).gamma(2.0, 0.3, size=300)  # skewed, like KL or ROUGE-L
    ours = bootstrap_mean(x, n_boot=20000)
    ref = sp.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                       random_state=np.random.default_rng(2)).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.005)  # Monte Carlo error of two bootstraps
    assert bootstrap_mean(x) == bootstrap_mean(x)  # seeded: the same store gives the same intervals


def test_paired_difference_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(3)
    item = rng.normal(size=400)  # what the items share: cancels in a paired difference
    a, b = item + rng.normal(0.10, 0.2, 400), item + rng.normal(0.0, 0.2, 400)
    d, lo, hi = paired_difference(a, b, n_boot=20000)
    ref = sp.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, n_resamples=20000, method="percentile",
                       random_state=np.random.default_rng(4)).confidence_interval
    assert d == pytest.approx(np.mean(a - b)) and (lo, hi) == pytest.approx((ref.low, ref.high), abs=0.003)
    assert hi - lo < 0.1  # much narrower than the unpaired interval, which the item effect inflates
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1, 0], [1])


def test_verdicts():
    assert verdict(0.01, 0.2) == "reproduced" and verdict(-0.2, -0.01) == "contradicted"
    assert verdict(-0.2, -0.01, expected=-1) == "reproduced" and verdict(-0.1, 0.1) == "not distinguishable"
