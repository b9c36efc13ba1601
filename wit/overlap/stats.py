"""The statistics of CLIP §5: Overlap / Clean / All accuracies, a one-tailed binomial test of
the Overlap accuracy against the Clean accuracy, and a 99.5% Clopper-Pearson interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# CLIP §5 reports a 99.5% interval on the Overlap accuracy.
CI_ALPHA = 0.005


def binomial_p_greater(k: int, n: int, p0: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p0): how surprising k correct of n is if the true rate is p0."""
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), p=float(p0), alternative="greater").pvalue)


def clopper_pearson(k: int, n: int, alpha: float = CI_ALPHA) -> tuple[float, float]:
    """Exact (beta) two-sided interval with coverage 1 - alpha on a binomial proportion k / n."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(int(k), int(n), alpha=alpha, method="beta")
    return float(lo), float(hi)


def _acc(correct: np.ndarray) -> float | None:
    return float(correct.mean()) if correct.size else None


@dataclass(frozen=True)
class OverlapStats:
    """One eval set's row of the overlap table; accuracies are None when there is no model."""

    n_all: int
    n_overlap: int
    n_clean: int
    contamination: float
    acc_all: float | None = None
    acc_clean: float | None = None
    acc_overlap: float | None = None
    # All - Clean: how much the reported accuracy is inflated by the overlapping examples.
    all_minus_clean: float | None = None
    # Overlap accuracy - Clean accuracy, with the Clopper-Pearson interval moved by the same shift.
    overlap_minus_clean: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def overlap_stats(is_overlap: np.ndarray, correct: np.ndarray | None = None, alpha: float = CI_ALPHA) -> OverlapStats:
    """Split one eval set by ``is_overlap`` and, given per-example ``correct``, test the Overlap accuracy.

    The null hypothesis is that an overlapping example is classified correctly at the Clean rate;
    the p-value is one-tailed (Overlap better than Clean), as in CLIP §5.
    """
    is_overlap = np.asarray(is_overlap, dtype=bool)
    n_all = int(is_overlap.size)
    n_overlap = int(is_overlap.sum())
    n_clean = n_all - n_overlap
    contamination = n_overlap / n_all if n_all else 0.0
    if correct is None:
        return OverlapStats(n_all, n_overlap, n_clean, contamination)
    correct = np.asarray(correct, dtype=bool)
    if correct.shape != is_overlap.shape:
        raise ValueError(f"correct has shape {correct.shape}, is_overlap {is_overlap.shape}")
    acc_all, acc_clean, acc_overlap = _acc(correct), _acc(correct[~is_overlap]), _acc(correct[is_overlap])
    all_minus_clean = acc_all - acc_clean if acc_all is not None and acc_clean is not None else None
    p_value = ci_low = ci_high = diff = d_lo = d_hi = None
    if n_overlap:
        k = int(correct[is_overlap].sum())
        ci_low, ci_high = clopper_pearson(k, n_overlap, alpha)
        if acc_clean is not None:
            p_value = binomial_p_greater(k, n_overlap, acc_clean)
            diff, d_lo, d_hi = acc_overlap - acc_clean, ci_low - acc_clean, ci_high - acc_clean
    return OverlapStats(n_all, n_overlap, n_clean, contamination, acc_all, acc_clean, acc_overlap,
                        all_minus_clean, diff, d_lo, d_hi, p_value, ci_low, ci_high)
