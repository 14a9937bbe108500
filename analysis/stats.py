"""Statistics the verdicts need: percentiles from raw samples with an order-statistic
confidence interval, Clopper-Pearson intervals for ratios, a t interval for means, Theil-Sen
slopes. Pure functions over numpy arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None
    high: float | None
    n: int


def percentile(values: NDArray[np.float64], q: float,
               confidence: float = CONFIDENCE) -> Estimate:
    """The q-quantile (0..1) of raw values, with the distribution-free interval between the
    order statistics whose ranks bound the quantile with `confidence`."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, None, None, 0)
    ordered = np.sort(values)
    value = float(np.quantile(ordered, q, method="linear"))
    alpha = 1 - confidence
    low_rank = int(stats.binom.ppf(alpha / 2, n, q))
    high_rank = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    low = float(ordered[max(low_rank - 1, 0)]) if low_rank >= 1 else None
    high = float(ordered[high_rank - 1]) if high_rank <= n else None
    return Estimate(value, low, high, n)


def ratio(successes: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """successes / n with the exact Clopper-Pearson interval."""
    if n == 0:
        return Estimate(math.nan, None, None, 0)
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes,
                                                          n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1,
                                                           n - successes))
    return Estimate(successes / n, low, high, n)


def mean(values: NDArray[np.float64], confidence: float = CONFIDENCE) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, None, None, 0)
    value = float(np.mean(values))
    if n < 2:
        return Estimate(value, None, None, n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / n ** 0.5)
    return Estimate(value, value - half, value + half, n)


def theil_sen(x: NDArray[np.float64], y: NDArray[np.float64],
              confidence: float = CONFIDENCE) -> Estimate:
    """Slope of y per unit of x, robust to outliers, with its confidence interval."""
    n = len(x)
    if n < 3:
        return Estimate(math.nan, None, None, n)
    if n > 2000:  # Theil-Sen is O(n²): thin evenly, the slope estimate is unaffected
        keep = np.linspace(0, n - 1, 2000).astype(int)
        x, y = x[keep], y[keep]
    slope, _, low, high = stats.theilslopes(y, x, alpha=confidence)
    return Estimate(float(slope), float(low), float(high), n)


def mann_kendall_p(y: NDArray[np.float64]) -> float:
    """Two-sided p-value of the Mann-Kendall trend test (Kendall's tau against time)."""
    if len(y) < 4:
        return 1.0
    return float(stats.kendalltau(np.arange(len(y)), y).pvalue)
