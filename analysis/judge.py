"""Thresholds → results: PASS / FAIL / INCONCLUSIVE / NOT_APPLICABLE with observed value,
sample count, confidence interval, worst window, how much of the run was judged and the reason;
then the run's verdict and exit code."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analysis import distributed
from analysis.analytics import fault_notes, snapshot_wait_s
from analysis.fault_verdicts import judged_phases
from analysis.load import RunData, outside_phases
from analysis.metrics import derived, included_seconds, viewers_established, windows
from analysis.populations import POPULATIONS, population
from analysis.stats import Estimate, mean, percentile, ratio, theil_sen
from analysis.thresholds import Threshold, ThresholdFile
from analysis.units import display_unit, show

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}
MIN_VIEWER_SHARE = 0.9
MIN_COVERAGE = 0.5


def label(status: str) -> str:
    """A status as people read it: NOT_APPLICABLE → NOT APPLICABLE."""
    return status.replace("_", " ")


@dataclass(frozen=True)
class Result:
    id: str
    checklist: str
    severity: str
    status: str
    observed: float | None
    low: float | None
    high: float | None
    n: int
    comparator: str
    limit: float
    unit: str                # display unit (analysis.units): "ratio" is a fraction shown as %
    aggregation: str
    reason: str
    kind: str | None = None  # the sample kind filtered on, for charts
    worst_window: dict[str, float] | None = None
    windows_passed: int | None = None
    windows_total: int | None = None
    population: str | None = None     # what the bad events could come from ...
    population_n: int | None = None   # ... and how many of them the run had
    judged_s: float | None = None     # seconds of the run judged (None: a derived figure)
    run_s: float | None = None        # the run's length

    def show(self, value: float | None) -> str:
        """`value` in this result's unit, as the report prints it."""
        return show(value, self.unit)


@dataclass
class Verdict:
    status: str
    exit_code: int
    results: list[Result]
    validity: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    coverage: float = 1.0
    thresholds_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "coverage": self.coverage,
                "validity": self.validity, "notes": self.notes,
                "thresholds_file": self.thresholds_file,
                "results": [asdict(r) for r in self.results]}


def aggregate(frame: pd.DataFrame, threshold: Threshold, seconds: float) -> Estimate:
    agg = threshold.aggregation
    if agg in ("success_ratio", "error_ratio"):
        ok = int(frame["ok"].sum())
        n = len(frame)
        return ratio(ok if agg == "success_ratio" else n - ok, n)
    if agg == "count":
        return Estimate(float(len(frame)), None, None, len(frame))
    if agg == "rate":
        return Estimate(len(frame) / seconds, None, None, len(frame))
    values = frame[threshold.field].to_numpy(dtype=np.float64)
    values = values[~np.isnan(values)]
    if agg in QUANTILES:
        return percentile(values, QUANTILES[agg])
    if agg == "mean":
        return mean(values)
    if agg == "slope":  # per hour
        ts = frame.ts.to_numpy(dtype=np.float64)[: len(values)] / 3600
        return theil_sen(ts, values)
    if len(values) == 0:
        return Estimate(math.nan, None, None, 0)
    return Estimate(float(values.max() if agg == "max" else values.min()), None, None,
                    len(values))


def select(run: RunData, threshold: Threshold) -> pd.DataFrame:
    frame = run.table(threshold.source)
    for column, wanted in threshold.filter.items():
        frame = frame[frame[column].isin(wanted if isinstance(wanted, list) else [wanted])]
    if threshold.exclude_phases and not frame.empty:
        frame = outside_phases(frame, judged_phases(run), threshold.exclude_phases)
    return frame


def _filtered_kind(threshold: Threshold) -> str | None:
    wanted = threshold.filter.get("kind") if threshold.source == "samples" else None
    return wanted if isinstance(wanted, str) else None


def judge_one(run: RunData, threshold: Threshold) -> Result:
    measure = threshold.metric or threshold.aggregation
    base: dict[str, Any] = {"id": threshold.id, "checklist": threshold.checklist,
            "severity": threshold.severity, "comparator": threshold.comparator,
            "limit": threshold.limit, "unit": display_unit(threshold.unit, measure),
            "aggregation": measure, "kind": _filtered_kind(threshold),
            "population": threshold.population, "run_s": round(run.end_s - run.start_s, 1)}
    if threshold.population:
        empty = _empty_population(run, threshold.population, base)
        if empty is not None:
            return empty
    if threshold.source == "derived":
        estimate = _settled(run, threshold, derived(run, str(threshold.metric)))
        frame = None
    else:
        judged_s = included_seconds(run, threshold.exclude_phases)
        base["judged_s"] = round(judged_s, 1)
        frame = select(run, threshold)
        estimate = aggregate(frame, threshold, judged_s)
    observed = None if math.isnan(estimate.value) else estimate.value
    if estimate.unjudgeable:
        return Result(**base, status="INCONCLUSIVE", observed=observed, low=estimate.low,
                      high=estimate.high, n=estimate.n,
                      reason=f"{estimate.unjudgeable} → INCONCLUSIVE")
    if estimate.n < threshold.min_samples or observed is None:
        status = threshold.below_min.upper()
        why = "no data to judge" if observed is None else \
            f"{estimate.n} samples, fewer than the {threshold.min_samples} needed"
        return Result(**base, status=status, observed=observed, low=estimate.low,
                      high=estimate.high, n=estimate.n, reason=f"{why} → {label(status)}")
    ok = COMPARE[threshold.comparator](observed, threshold.limit)
    # A count of bad events is judged on its population ("0 drops among 250 viewers"): n is
    # that population, not the number of bad events found.
    n = base["population_n"] if threshold.population and threshold.aggregation == "count" \
        else estimate.n
    result = Result(**base, status="PASS" if ok else "FAIL", observed=observed,
                    low=estimate.low, high=estimate.high, n=n, reason="")
    detail = f"; {estimate.detail}" if estimate.detail else ""
    result = replace(result, reason=_reason(result, threshold, observed, ok) + detail)
    if threshold.scope == "windows" and frame is not None:
        result = _judge_windows(run, threshold, frame, result)
    return result


def _settled(run: RunData, threshold: Threshold, estimate: Estimate) -> Estimate:
    """An analytics figure read too soon after the load cannot carry a verdict."""
    waited_s = snapshot_wait_s(run)
    if threshold.settle_s is None or waited_s is None or waited_s >= threshold.settle_s:
        return estimate
    return replace(estimate, unjudgeable=f"ClickHouse was read {waited_s:.1f} s after the "
                                         f"load; this line needs {threshold.settle_s:g} s "
                                         "(raise monitors.analytics.settle_s)")


def _empty_population(run: RunData, name: str, base: dict[str, Any]) -> Result | None:
    """NOT_APPLICABLE (INCONCLUSIVE when the scenario planned members) for a threshold whose
    population the run did not have; None when it had members (their count goes in `base`)."""
    members = population(run, name)
    base["population_n"] = members.size
    if members.size:
        return None
    status = "INCONCLUSIVE" if members.planned else "NOT_APPLICABLE"
    why = (f"no {members.description}, though the scenario planned some" if members.planned
           else f"no {members.description} in this run: nothing to judge")
    return Result(**base, status=status, observed=None, low=None, high=None, n=0,
                  reason=f"{why} → {label(status)}")


def _reason(result: Result, threshold: Threshold, observed: float, ok: bool) -> str:
    """A true sentence: the observed figure, the comparator and the limit, the judgement
    ("p95 20.6 ms < 100 ms: holds"; "growth 7.13 %, not < 5 %: breached")."""
    among = ""
    if result.population_n is not None:
        among = f" among {result.population_n} {POPULATIONS[str(threshold.population)]}"
    limit = f"{threshold.comparator} {result.show(threshold.limit)}"
    if ok:
        return f"{result.aggregation} {result.show(observed)}{among} {limit}: holds"
    return f"{result.aggregation} {result.show(observed)}{among}, not {limit}: breached"


def _judge_windows(run: RunData, threshold: Threshold, frame: pd.DataFrame,
                   whole: Result) -> Result:
    passes = COMPARE[threshold.comparator]
    per_window: list[tuple[float, float]] = []
    for index, window in frame.groupby(windows(frame.ts, run.start_s, threshold.window_s)):
        estimate = aggregate(window, threshold, threshold.window_s)
        if not math.isnan(estimate.value):
            per_window.append((int(index) * threshold.window_s, estimate.value))
    if not per_window:
        return whole
    passed = sum(passes(v, threshold.limit) for _, v in per_window)
    higher_is_worse = threshold.comparator in ("<", "<=")
    worst_start, worst_value = (max if higher_is_worse else min)(per_window, key=lambda w: w[1])
    share = passed / len(per_window)
    ok = share >= threshold.window_share
    reason = (f"{passed}/{len(per_window)} windows of {threshold.window_s:.0f} s hold "
              f"{threshold.aggregation} {threshold.comparator} {whole.show(threshold.limit)} "
              f"(rule: {threshold.window_rule}); worst {whole.show(worst_value)} at "
              f"+{worst_start:.0f} s")
    return Result(**{**asdict(whole), "status": "PASS" if ok else "FAIL", "reason": reason,
                     "worst_window": {"start_s": worst_start, "value": worst_value},
                     "windows_passed": passed, "windows_total": len(per_window)})


def validity_problems(run: RunData) -> list[str]:
    """Reasons the run itself cannot support a PASS."""
    problems = []
    validity = run.manifest.validity
    if validity and validity.saturated:
        problems.append(f"load generator saturated for {validity.saturated_seconds} s "
                        f"(CPU max {validity.cpu_max_pct} %, loop lag max "
                        f"{validity.loop_lag_max_ms} ms): latencies may be the "
                        "generator's")
    planned = run.manifest.planned.viewers
    if planned:
        got = viewers_established(run)
        if got < MIN_VIEWER_SHARE * planned:
            problems.append(f"only {got} of {planned} planned viewers connected: the load "
                            "asked for was not applied")
    problems += distributed.worker_losses(run)
    if run.manifest.status in ("running", "crashed") and run.coverage < MIN_COVERAGE:
        problems.append(f"run did not finish (status {run.manifest.status}) and its "
                        f"data covers only {run.coverage:.0%} of the planned duration")
    return problems


def notes(run: RunData) -> list[str]:
    status = run.manifest.status
    found = []
    if status in ("running", "crashed", "aborted"):
        found.append(f"run {status}: judged on the data up to its end ({run.coverage:.0%} of "
                     "the planned duration)")
    for gap in run.manifest.gaps:
        found.append(f"killed at +{gap.start - run.start_s:.0f} s and resumed "
                     f"{gap.end - gap.start:.0f} s later: the gap is not "
                     "judged; trends are fitted within each segment")
    if run.manifest.gaps:
        found.append(f"coverage: {run.coverage:.0%} of the planned time has data")
    return found + distributed.clock_problems(run) + fault_notes(run)


def judge(run: RunData, thresholds: ThresholdFile, source: str = "") -> Verdict:
    results = distributed.qualify(run, [(t, judge_one(run, t)) for t in thresholds.thresholds])
    problems = validity_problems(run)
    critical = [r for r in results if r.severity == "critical"]
    if not any(r.status == "PASS" for r in critical):
        problems.append("no critical threshold passed: nothing in this run shows the target "
                        "meets the checklist")
    if any(r.status == "FAIL" for r in critical):
        status = "FAIL"
    elif problems or any(r.status == "INCONCLUSIVE" for r in critical):
        status = "INCONCLUSIVE"
    else:
        status = "PASS"
    return Verdict(status, EXIT_CODES[status], results, problems, notes(run), run.coverage,
                   source)
