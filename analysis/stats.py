"""Statistics the verdicts need: percentiles from raw samples with an order-statistic
confidence interval, Clopper-Pearson intervals for ratios, a t interval for means, Theil-Sen
slopes and the Mann-Kendall test (both optionally stratified). Pure functions over numpy arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

CONFIDENCE = 0.95
MAX_POINTS = 2000  # Theil-Sen and Mann-Kendall look at every pair of points


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None
    high: float | None
    n: int
    # Why this figure, though computed, cannot carry a verdict (the threshold is INCONCLUSIVE
    # with this reason): e.g. a trend fitted on too little time.
    unjudgeable: str | None = None
    # What the figure is made of, for the reason (e.g. the events a comparison found missing).
    detail: str | None = None


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
              confidence: float = CONFIDENCE,
              strata: NDArray[np.int64] | None = None) -> Estimate:
    """Slope of y per unit of x, robust to outliers, with its confidence interval (Sen's).
    With `strata` (a label per point) slopes are taken only between points of the same
    stratum: a change of level between strata (the two segments of a resumed run) is no
    slope, while a slope inside every stratum still is."""
    n = len(x)
    if n < 3:
        return Estimate(math.nan, None, None, n)
    labels = np.zeros(n, dtype=np.int64) if strata is None else strata
    if n > MAX_POINTS:  # the pairs are O(n²): thin evenly, the estimate is unaffected
        keep = np.linspace(0, n - 1, MAX_POINTS).astype(int)
        x, y, labels = x[keep], y[keep], labels[keep]
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    slopes = np.sort(np.concatenate([_pair_slopes(x[g], y[g]) for g in groups]))
    if slopes.size == 0:
        return Estimate(math.nan, None, None, n)
    sigma = math.sqrt(sum(_s_variance(x[g], y[g]) for g in groups))
    z = float(stats.norm.ppf((1 + confidence) / 2))
    low_rank = max(round((slopes.size - z * sigma) / 2) - 1, 0)
    high_rank = min(round((slopes.size + z * sigma) / 2), slopes.size - 1)
    return Estimate(float(np.median(slopes)), float(slopes[low_rank]),
                    float(slopes[high_rank]), n)


def mann_kendall_p(y: NDArray[np.float64], strata: NDArray[np.int64] | None = None) -> float:
    """Two-sided p-value of the Mann-Kendall trend test (normal approximation, ties
    corrected). With `strata` the statistic and its variance are summed over the strata
    (each tested against its own time order), so only trends inside them count."""
    labels = np.zeros(len(y), dtype=np.int64) if strata is None else strata
    groups = [y[labels == label] for label in np.unique(labels)]
    statistic = sum(_kendall_s(group) for group in groups)
    variance = sum(_s_variance(np.arange(len(group), dtype=np.float64), group)
                   for group in groups)
    if len(y) < 4 or variance <= 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(statistic) / math.sqrt(variance)))


def _pair_slopes(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    dx = x[np.newaxis, :] - x[:, np.newaxis]
    dy = y[np.newaxis, :] - y[:, np.newaxis]
    forward = dx > 0
    result: NDArray[np.float64] = dy[forward] / dx[forward]
    return result


def _kendall_s(y: NDArray[np.float64]) -> float:
    """Concordant minus discordant pairs of y against its order."""
    upper = np.triu_indices(len(y), k=1)
    return float(np.sign(y[np.newaxis, :] - y[:, np.newaxis])[upper].sum())


def _s_variance(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Variance of Kendall's S under no trend, less the ties in x and in y."""
    def ties(values: NDArray[np.float64]) -> float:
        _, counts = np.unique(values, return_counts=True)
        return float(np.sum(counts * (counts - 1) * (2 * counts + 5)))
    n = len(y)
    return (n * (n - 1) * (2 * n + 5) - ties(x) - ties(y)) / 18
