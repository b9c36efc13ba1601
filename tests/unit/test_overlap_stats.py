"""The overlap statistics against scipy / statsmodels and against cases checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest
from statsmodels.stats.proportion import proportion_confint

from wit.overlap.stats import binomial_p_greater, clopper_pearson, overlap_stats


@pytest.mark.parametrize("k,n,p0", [(62, 80, 0.7), (5, 12, 0.25), (0, 10, 0.3), (10, 10, 0.9), (431, 500, 0.8)])
def test_binomial_p_equals_scipy(k, n, p0):
    assert binomial_p_greater(k, n, p0) == pytest.approx(binomtest(k, n, p0, alternative="greater").pvalue, rel=1e-12)
    # P(X >= k) is the binomial survival function at k - 1.
    assert binomial_p_greater(k, n, p0) == pytest.approx(binom.sf(k - 1, n, p0), rel=1e-9)


def test_binomial_p_by_hand():
    # 3 of 3 correct when the clean rate is 1/2: probability 1/8; at least 2 of 3: 3/8 + 1/8.
    assert binomial_p_greater(3, 3, 0.5) == pytest.approx(0.125)
    assert binomial_p_greater(2, 3, 0.5) == pytest.approx(0.5)
    assert binomial_p_greater(0, 7, 0.4) == pytest.approx(1.0)


@pytest.mark.parametrize("k,n", [(62, 80), (0, 10), (10, 10), (1, 3), (431, 500)])
def test_clopper_pearson_equals_statsmodels(k, n):
    lo, hi = proportion_confint(k, n, alpha=0.005, method="beta")
    assert clopper_pearson(k, n) == pytest.approx((lo, hi), rel=1e-12)


def test_clopper_pearson_by_hand():
    # k = 0: the upper bound solves (1 - p)^n = alpha / 2; k = n: the lower bound solves p^n = alpha / 2.
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.0025 ** (1 / 10))
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.0025 ** (1 / 10))
    lo, hi = clopper_pearson(62, 80)
    assert lo < 62 / 80 < hi and hi - lo > 2 * 1.96 * math.sqrt(0.775 * 0.225 / 80)  # wider than a 95% Wald


def test_overlap_stats_splits_and_scores():
    # 10 examples: 4 overlap (3 correct), 6 clean (3 correct).
    is_overlap = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    correct = np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 0], bool)
    s = overlap_stats(is_overlap, correct)
    assert (s.n_all, s.n_overlap, s.n_clean) == (10, 4, 6)
    assert s.contamination == pytest.approx(0.4)
    assert (s.acc_all, s.acc_clean, s.acc_overlap) == pytest.approx((0.6, 0.5, 0.75))
    assert s.all_minus_clean == pytest.approx(0.1)
    assert s.overlap_minus_clean == pytest.approx(0.25)
    # P(X >= 3), X ~ B(4, 1/2) = 5/16
    assert s.p_value == pytest.approx(5 / 16)
    assert (s.ci_low, s.ci_high) == pytest.approx(proportion_confint(3, 4, alpha=0.005, method="beta"))
    assert s.diff_ci_low == pytest.approx(s.ci_low - 0.5) and s.diff_ci_high == pytest.approx(s.ci_high - 0.5)


def test_overlap_stats_without_model_or_overlap():
    s = overlap_stats(np.zeros(5, bool))
    assert s.contamination == 0 and s.acc_all is None and s.p_value is None
    s = overlap_stats(np.zeros(5, bool), np.array([1, 0, 1, 0, 1], bool))
    assert s.acc_clean == pytest.approx(0.6) and s.acc_overlap is None and s.p_value is None and s.ci_low is None
    with pytest.raises(ValueError, match="shape"):
        overlap_stats(np.zeros(5, bool), np.zeros(4, bool))
