"""`nova-harness compare BASELINE CANDIDATE`: which latencies got significantly worse between
two runs — Mann-Whitney U (one-sided) plus a minimum effect size, so a regression between two
builds shows even when both pass the fixed thresholds, and noise does not."""

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
    p_value: float
    n_baseline: int
    n_candidate: int
    worse: bool


def _latencies(results_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    run = load_run(results_dir)
    samples = run.samples[run.samples.ok]
    samples = outside_phases(samples, run.recorded_phases(), ["warmup", "cooldown"])
    return {(str(kind), str(name)): group.latency_ms.to_numpy(dtype=np.float64)
            for (kind, name), group in samples.groupby(["kind", "name"])}


def compare(baseline: Path, candidate: Path) -> list[Comparison]:
    before, after = _latencies(baseline), _latencies(candidate)
    out = []
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
            continue
        p_value = float(stats.mannwhitneyu(b, a, alternative="greater").pvalue)
        med_a, med_b = float(np.median(a)), float(np.median(b))
        worse = (p_value < ALPHA and med_b - med_a >= MIN_ABSOLUTE_MS
                 and med_b >= med_a * (1 + MIN_RELATIVE))
        out.append(Comparison(key[0], key[1], med_a, med_b, float(np.percentile(a, 95)),
                              float(np.percentile(b, 95)), p_value, len(a), len(b), worse))
    return out
