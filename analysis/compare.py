"""`nova-harness compare BASELINE CANDIDATE`: which latencies got significantly worse between
two runs, at the median (Mann-Whitney U, one-sided) and at p95 (the share of the candidate's
samples above the baseline's p95 against the 5 % it would be unchanged, one-sided binomial),
each with a minimum effect size, so a regression between two builds shows even when both pass
the fixed thresholds, and noise does not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from analysis.load import load_run, outside_phases

ALPHA = 0.01
MIN_RELATIVE = 0.10   # the candidate's median must be ≥ 10 % worse …
MIN_ABSOLUTE_MS = 1.0  # … and ≥ 1 ms worse
MIN_SAMPLES = 20


@dataclass(frozen=True)
class Comparison:
    kind: str
    name: str
    baseline_median_ms: float
    candidate_median_ms: float
    baseline_p95_ms: float
    candidate_p95_ms: float
    p_value: float          # the median's test
    p_value_p95: float      # the p95's test
    n_baseline: int
    n_candidate: int
    worse_median: bool      # significant and past the rule's limit
    worse_p95: bool

    @property
    def worse(self) -> bool:
        return self.worse_median or self.worse_p95

    @property
    def verdict(self) -> str:
        """WORSE (and where), "worse, below the rule's limit" (significant but smaller than
        10 % and 1 ms), "no significant change", or "better"."""
        if self.worse:
            where = [w for w, bad in (("median", self.worse_median), ("p95", self.worse_p95))
                     if bad]
            return f"WORSE ({', '.join(where)})"
        median_up = self.candidate_median_ms > self.baseline_median_ms
        p95_up = self.candidate_p95_ms > self.baseline_p95_ms
        significant = (self.p_value < ALPHA and median_up) or (self.p_value_p95 < ALPHA and p95_up)
        if significant:
            return "worse, below the rule's limit"
        if self.candidate_median_ms <= self.baseline_median_ms and \
                self.candidate_p95_ms <= self.baseline_p95_ms:
            return "same or better"
        return "no significant change"


def _latencies(results_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    run = load_run(results_dir)
    samples = run.samples[run.samples.ok]
    samples = outside_phases(samples, run.recorded_phases(), ["warmup", "cooldown"])
    return {(str(kind), str(name)): group.latency_ms.to_numpy(dtype=np.float64)
            for (kind, name), group in samples.groupby(["kind", "name"])}


def _past_rule(before: float, after: float) -> bool:
    return after - before >= MIN_ABSOLUTE_MS and after >= before * (1 + MIN_RELATIVE)


def compare(baseline: Path, candidate: Path) -> list[Comparison]:
    before, after = _latencies(baseline), _latencies(candidate)
    out = []
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
            continue
        p_value = float(stats.mannwhitneyu(b, a, alternative="greater").pvalue)
        med_a, med_b = float(np.median(a)), float(np.median(b))
        p95_a, p95_b = float(np.percentile(a, 95)), float(np.percentile(b, 95))
        above = int((b > p95_a).sum())
        p_value_p95 = float(stats.binomtest(above, len(b), 0.05, alternative="greater").pvalue)
        out.append(Comparison(
            key[0], key[1], med_a, med_b, p95_a, p95_b, p_value, p_value_p95, len(a), len(b),
            worse_median=p_value < ALPHA and _past_rule(med_a, med_b),
            worse_p95=p_value_p95 < ALPHA and _past_rule(p95_a, p95_b)))
    return out
