"""Soak statistics (checklist §15): trends that fail only when they are both significant and
large. A series is first reduced to medians per bucket (the raw 1 s samples are strongly
autocorrelated, which would make any test over-confident); the slope is Theil-Sen with its
confidence interval, significance is Mann-Kendall; a resumed run's memory is fitted only
within its uninterrupted stretches (both statistics stratified): the kill drops every socket
and session at once and the resumed run opens new ones, so the target settles at a new level,
and a step across the gap is not growth. A trend's *growth share*
is its slope times the judged duration over the series' baseline — reported as 0 when the
trend is not significant, so a threshold's limit on it is the minimum effect (5 % by default
in the files).

Memory is each role's summed anonymous PSS where the monitor recorded it, else its summed
PSS, else its summed RSS (analysis/memory.py). Also: memory before and after each
connect/disconnect cycle, the harness's own memory slope (over its longest uninterrupted
process: a resumed run is a new process with its own level and warm-up), and the time the
database spent at its connection limit."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis.load import RunData, outside_phases
from analysis.memory import role_memory
from analysis.stats import Estimate, mann_kendall_p, ratio, theil_sen
from records.schema import WS_RTT

ALPHA = 0.05
MIN_BUCKETS = 8
BUCKET_TARGET = 120  # buckets per run: enough for the tests, few enough to de-correlate
BASELINE_SHARE = 0.1
# Memory settles before it can leak: caches and pools fill, allocators reach their working
# size. Latency: the first part of the judged span is left out of the trend (20 %, at most
# 15 minutes). Memory: each series settles where the data says (settle_index).
SETTLE_SHARE, SETTLE_MAX_S = 0.2, 900.0
SETTLE_WINDOW_SHARE, SETTLE_MIN_WINDOW, SETTLE_MAX_SHARE = 0.125, 4, 0.5
# A trend fitted on less settled time than this is warm-up as much as leak: INCONCLUSIVE.
MIN_TREND_S = 1800.0
CYCLE_WINDOW_S = 15.0
CYCLE_TOLERANCE = 0.10
PG_LIMIT_SHARE = 0.95
# A round trip of ~5 ms whose p95 wanders by a few ms is a large share of itself but no drift
# anyone would act on (a short soak failed on 4.7 → ~10 ms): latency growth must also be this
# large to count.
LATENCY_DRIFT_FLOOR_MS = 10.0
PG_POLL_S = 5.0
TARGET_ROLES = ("api", "postgres", "postgres-standby", "redis", "nginx")
JUDGED_OUT = ("warmup", "cooldown", "gap")


@dataclass(frozen=True)
class Span:
    """One uninterrupted stretch of a fitted series (a run resumed after a kill has two)."""

    start_s: float  # the first bucket (epoch seconds)
    duration_h: float
    baseline: float  # median of the stretch's first BASELINE_SHARE of buckets


@dataclass(frozen=True)
class Trend:
    """One series' trend over the judged phases. A resumed run's series is fitted within
    its spans only (stratified): a level step across the gap is not growth."""

    name: str
    slope_per_h: float
    low_per_h: float | None
    high_per_h: float | None
    p_value: float
    spans: tuple[Span, ...]
    n: int

    @property
    def baseline(self) -> float:
        return self.spans[0].baseline

    @property
    def duration_h(self) -> float:
        """Hours fitted (the spans' sum: a gap is not time the series could grow in)."""
        return sum(span.duration_h for span in self.spans)

    @property
    def start_s(self) -> float:
        return self.spans[0].start_s

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and self.slope_per_h > 0

    @property
    def growth_share(self) -> float:
        """Growth over the judged duration as a share of the baseline (0 when not
        significant)."""
        if not self.significant or self.baseline <= 0:
            return 0.0
        return self.slope_per_h * self.duration_h / self.baseline


def bucket_s(run: RunData) -> float:
    """Bucket width: ~BUCKET_TARGET buckets over the run, at least 10 s."""
    return max(10.0, (run.end_s - run.start_s) / BUCKET_TARGET)


def trend(name: str, ts: pd.Series, values: pd.Series, width_s: float,
          cuts: Sequence[float] = ()) -> Trend | None:
    """The trend of `values` (at times `ts`), fitted within the stretches between `cuts`
    (gap starts), or None with too few buckets."""
    if ts.empty:
        return None
    buckets = values.groupby((ts // width_s) * width_s).median().sort_index()
    if len(buckets) < MIN_BUCKETS:
        return None
    starts_s = buckets.index.to_numpy(dtype=np.float64)
    hours = (starts_s - starts_s[0]) / 3600
    y = buckets.to_numpy(dtype=np.float64)
    strata = np.searchsorted(np.asarray(cuts, dtype=np.float64), starts_s, side="right")
    slope = theil_sen(hours, y, strata=strata)
    spans = tuple(_span(starts_s[strata == label], y[strata == label])
                  for label in np.unique(strata))
    return Trend(name, slope.value, slope.low, slope.high, mann_kendall_p(y, strata), spans,
                 len(y))


def _span(starts_s: NDArray[np.float64], y: NDArray[np.float64]) -> Span:
    head = max(1, int(len(y) * BASELINE_SHARE))
    return Span(float(starts_s[0]), float(starts_s[-1] - starts_s[0]) / 3600,
                float(np.median(y[:head])))


def _judged(run: RunData, frame: pd.DataFrame) -> pd.DataFrame:
    return outside_phases(frame, run.recorded_phases(), JUDGED_OUT)


def settled(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without its first SETTLE_SHARE (at most SETTLE_MAX_S)."""
    if frame.empty:
        return frame
    first, last = float(frame.ts.min()), float(frame.ts.max())
    return frame[frame.ts >= first + min(SETTLE_SHARE * (last - first), SETTLE_MAX_S)]


def settle_index(hours: NDArray[np.float64], y: NDArray[np.float64]) -> int:
    """Where a bucketed series has settled: the first bucket from which a sliding window's
    slope is no longer significantly steeper than the slope of everything after it (its
    interval's low end at or below that slope, or below 0). A leak's steady slope settles
    at once; a warm-up's steep start is left out. At most SETTLE_MAX_SHARE of the series."""
    n = len(y)
    width = max(SETTLE_MIN_WINDOW, int(n * SETTLE_WINDOW_SHARE))
    last = int(n * SETTLE_MAX_SHARE)
    for i in range(0, last + 1):
        if i + width > n:
            break
        window = theil_sen(hours[i:i + width], y[i:i + width])
        rest = theil_sen(hours[i:], y[i:])
        if window.low is None or math.isnan(rest.value) or window.low <= max(rest.value, 0.0):
            return i
    return last


def settled_from_data(frame: pd.DataFrame, width_s: float,
                      column: str = "memory_bytes") -> pd.DataFrame:
    """`frame` (one series) from where it settled (settle_index over medians per
    `width_s` bucket)."""
    if frame.empty:
        return frame
    buckets = frame[column].groupby((frame.ts // width_s) * width_s).median().sort_index()
    if len(buckets) < MIN_BUCKETS:
        return frame
    starts_s = buckets.index.to_numpy(dtype=np.float64)
    first = settle_index((starts_s - starts_s[0]) / 3600, buckets.to_numpy(dtype=np.float64))
    kept: pd.DataFrame = frame[frame.ts >= starts_s[first]]
    return kept


def gap_starts(run: RunData) -> list[float]:
    """Where each recorded gap (a killed run and its resumption) began."""
    return sorted(float(p["start"]) for p in run.recorded_phases() if p["name"] == "gap")


def segments(run: RunData, frame: pd.DataFrame) -> list[pd.DataFrame]:
    """`frame` cut at every recorded gap."""
    edges = [-math.inf, *gap_starts(run), math.inf]
    return [frame[(frame.ts >= low) & (frame.ts < high)]
            for low, high in itertools.pairwise(edges)]


def judged_settled(run: RunData, frame: pd.DataFrame) -> pd.DataFrame:
    """The judged rows of one memory series, each segment settled on its own (a resumed run
    ramps its viewers, streams and sessions up again, and settles again)."""
    parts = [settled_from_data(part, bucket_s(run))
             for part in segments(run, _judged(run, frame))]
    return pd.concat(parts) if parts else frame


def memory_trends(run: RunData) -> list[Trend]:
    """Memoised per run (see RunData.memo); computed by _memory_trends."""
    result: list[Trend] = run.memo("trends.memory", lambda: _memory_trends(run))
    return result


def _memory_trends(run: RunData) -> list[Trend]:
    """Memory trend per target role (instances and children summed) and of the harness."""
    memory = role_memory(run.resources, TARGET_ROLES)
    found, cuts = [], gap_starts(run)
    for role, series in memory.groupby("role"):
        group = judged_settled(run, series)
        found_trend = trend(str(role), group.ts, group.memory_bytes, bucket_s(run), cuts)
        if found_trend is not None:
            found.append(found_trend)
    harness = _harness_trend(run)
    return found if harness is None else [*found, harness]


def _harness_trend(run: RunData) -> Trend | None:
    """The generator's trend per process (each worker, each resumed run's new process), each
    settled on its own: the longest-lived process's, the steepest among those about as long.
    Per process because each samples its PSS on its own clock: a per-second sum across
    processes would mix readings of different moments."""
    rows = run.resources[run.resources.role == "harness"]
    found = []
    for part in segments(run, rows):
        for _, process in part.groupby("pid", observed=True):
            memory = settled_from_data(_judged(run, role_memory(process, ("harness",))),
                                       bucket_s(run))
            process_trend = trend("harness", memory.ts, memory.memory_bytes, bucket_s(run))
            if process_trend is not None:
                found.append(process_trend)
    if not found:
        return None
    longest = max(t.n for t in found)
    return max((t for t in found if t.n >= 0.9 * longest), key=lambda t: t.slope_per_h)


def latency_trend(run: RunData, kind: str = WS_RTT) -> Trend | None:
    """Trend of the per-bucket p95 of one sample kind (the clock-free round trip by
    default: push latency would mix the generator's and the server's clocks)."""
    # One fit across a resumed run's gap, unlike memory: a resumed segment is short, and
    # fitted alone its few buckets let the teardown's last seconds (round trips in flight
    # when the publishers stop) read as drift — a CI-like run failed so (2026-11-29).
    samples = settled(_judged(run, run.samples[(run.samples.kind == kind) & run.samples.ok]))
    if samples.empty:
        return None
    width = bucket_s(run)
    p95 = samples.latency_ms.groupby((samples.ts // width) * width).quantile(0.95)
    return trend(f"{kind} p95", pd.Series(p95.index, dtype=float), p95.reset_index(drop=True),
                 width)


@dataclass(frozen=True)
class Cycle:
    number: int
    start: float
    end: float
    before_bytes: float
    after_bytes: float

    @property
    def returned(self) -> bool:
        return self.after_bytes <= self.before_bytes * (1 + CYCLE_TOLERANCE)


def cycles(run: RunData, role: str = "api") -> list[Cycle]:
    """Each complete connect/hold/disconnect/idle cycle with the role's median memory in the
    CYCLE_WINDOW_S before it began and at the end of its idle time."""
    events = run.events
    starts = events[events.type == "cycle_started"]
    ends = events[events.type == "cycle_idle_end"]
    memory = role_memory(run.resources, (role,))
    found = []
    for number, start in zip(starts.value.to_numpy(), starts.ts.to_numpy(), strict=True):
        end = ends[ends.value == number].ts
        if end.empty:
            continue  # the run ended inside this cycle
        before = memory[(memory.ts >= start - CYCLE_WINDOW_S) & (memory.ts < start)].memory_bytes
        after = memory[(memory.ts >= end.iloc[0] - CYCLE_WINDOW_S) &
                       (memory.ts <= end.iloc[0])].memory_bytes
        if before.empty or after.empty:
            continue
        found.append(Cycle(int(number), float(start), float(end.iloc[0]),
                           float(before.median()), float(after.median())))
    return found


TREND_METRICS = {
    "memory_growth_share_max": "largest significant memory growth (summed anonymous PSS, "
                               "else PSS, else RSS, as recorded) over the run among the "
                               "target's roles, "
                               "as a share of its baseline (0 when no trend is significant)",
    "cycle_memory_returned_ratio": "connect/disconnect cycles after which the service's memory "
                                   f"came back within {CYCLE_TOLERANCE:.0%} of its level before",
    "ws_rtt_drift_share": "significant growth of the round trip's p95 over the run, as a "
                          "share of its baseline (0 when not significant or under "
                          f"{LATENCY_DRIFT_FLOOR_MS:.0f} ms)",
    "harness_memory_slope_mb_per_h": "the load generator's own memory slope (anonymous PSS, "
                                     "else RSS), MB per hour, over its longest-lived process",
    "db_connections_at_limit_s": f"seconds the database had ≥ {PG_LIMIT_SHARE:.0%} of "
                                 "max_connections in use",
}


def too_short(trends_found: Sequence[Trend]) -> str | None:
    """Why these trends cannot be judged yet: the shortest was fitted on less settled time
    than MIN_TREND_S (per segment after a resume: the spans' sum)."""
    shortest = min(trends_found, key=lambda t: t.duration_h)
    judged_min = shortest.duration_h * 60
    if judged_min * 60 >= MIN_TREND_S:
        return None
    return (f"{shortest.name}: {judged_min:.0f} min judged after settling, needs ≥ "
            f"{MIN_TREND_S / 60:.0f} (a shorter trend is warm-up as much as leak)")


def derived(run: RunData, name: str) -> Estimate:
    """One of TREND_METRICS; a trend on too little settled time is unjudgeable."""
    if name == "memory_growth_share_max":
        target = [t for t in memory_trends(run) if t.name in TARGET_ROLES]
        if not target:
            recorded = not role_memory(run.resources, TARGET_ROLES).empty
            return Estimate(math.nan, None, None, 0, (
                f"too little settled time to fit a memory trend (fewer than {MIN_BUCKETS} "
                f"buckets of {bucket_s(run):.0f} s in a segment after settling)")
                if recorded else None)
        return Estimate(max(t.growth_share for t in target), None, None,
                        sum(t.n for t in target), too_short(target))
    if name == "cycle_memory_returned_ratio":
        found = cycles(run)
        estimate = ratio(sum(c.returned for c in found), len(found))
        started = int((run.events.type == "cycle_started").sum())
        if found or not started:
            return estimate
        return replace(estimate, unjudgeable=f"{started} cycle(s) started, none reached the "
                       "end of its idle time with memory samples before and after it (a run "
                       "killed or ended inside a cycle)")
    if name == "ws_rtt_drift_share":
        found_trend = latency_trend(run)
        if found_trend is None:
            return Estimate(math.nan, None, None, 0)
        growth_ms = found_trend.slope_per_h * found_trend.duration_h
        drift_share = found_trend.growth_share if growth_ms >= LATENCY_DRIFT_FLOOR_MS else 0.0
        return Estimate(drift_share, None, None, found_trend.n, too_short([found_trend]))
    if name == "harness_memory_slope_mb_per_h":
        harness = [t for t in memory_trends(run) if t.name == "harness"]
        if not harness:
            return Estimate(math.nan, None, None, 0)
        mb = 1e6
        return Estimate(harness[0].slope_per_h / mb,
                        None if harness[0].low_per_h is None else harness[0].low_per_h / mb,
                        None if harness[0].high_per_h is None else harness[0].high_per_h / mb,
                        harness[0].n, too_short(harness))
    if name == "db_connections_at_limit_s":
        share = run.metrics[run.metrics.series == "pg_connections_share"]
        if share.empty:
            return Estimate(math.nan, None, None, 0)
        return Estimate(float((share.value >= PG_LIMIT_SHARE).sum() * PG_POLL_S), None, None,
                        len(share))
    raise KeyError(name)


def describe(found: Trend, unit: str = "MiB", scale: float = 2**20) -> str:
    """One line for the report (memory in MiB by default)."""
    def fmt(value: float) -> str:
        return f"{value / scale:.3g}"
    interval = "" if found.low_per_h is None or found.high_per_h is None else \
        f" [{fmt(found.low_per_h)}, {fmt(found.high_per_h)}]"
    return (f"{found.name}: {fmt(found.slope_per_h)}{interval} {unit}/h, Mann-Kendall p "
            f"{found.p_value:.2g}, baseline {fmt(found.baseline)} {unit}, growth over "
            f"{found.duration_h * 60:.0f} min {found.growth_share:.1%}"
            f"{' (significant)' if found.significant else ''}")
