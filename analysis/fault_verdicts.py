"""Fault verdict figures, from the load traffic itself (docs/chaos.md): for each fault window,
error ratio and p95 before / during / after, time to recover, viewers dropped and how fast they
came back, broadcaster reconnects, and the acknowledged-write (data-loss) check."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis import distributed
from analysis.counts import count_matches, observed_counts
from analysis.load import RunData, operation_end_s
from analysis.stats import Estimate
from records.schema import HTTP, RTMP_PUBLISH, STREAM_GONE_DETAIL, WS_CONNECT, WS_RECONNECT, WS_RTT

# The request traffic a fault is judged on: API calls, viewer (re)connects, socket round trips.
TRAFFIC_KINDS = (HTTP, WS_CONNECT, WS_RTT)
BASELINE_S = 30.0
SUSTAINED_S = 10.0
STEP_S = 0.5
MIN_WINDOW_SAMPLES = 5
ERROR_SLACK = 0.01       # recovered: error ratio within 1 point of the baseline's
P95_FACTOR, P95_SLACK_MS = 1.5, 50.0  # ... and p95 within 1.5x (or 50 ms) of the baseline's
DROP_GRACE_S = 5.0       # drops this long after a fault's end still belong to it
BACK_WITHIN_S = 30.0
# A fault that never recovered leaves this much after its window out of the other thresholds
# (the fault-recovery line fails it anyway).
RECOVERY_MAX_S = 30.0


@dataclass(frozen=True)
class FaultFigures:
    id: str
    title: str
    start: float
    end: float
    status: str
    deviated: bool
    baseline_error_ratio: float
    during_error_ratio: float
    after_error_ratio: float
    baseline_p95_ms: float
    during_p95_ms: float
    after_p95_ms: float
    # As users saw it: first failed operation after the injection → first of a sustained run
    # of successes (0 when no operation failed; None when the failures never stopped).
    outage_s: float | None
    outage_started_at: float | None  # epoch s of its first failure (None: nothing failed)
    # From the injection until errors and p95 stay at the baseline (None: never before the
    # load ended). The fault window itself ends only after the experiment's own waits.
    recovery_s: float | None
    recovered_at: float | None      # epoch s of that recovery
    viewers_dropped: int
    viewers_back_within_30s: int
    viewers_never_back: int
    reconnect_p50_s: float
    reconnect_p95_s: float
    reconnect_max_s: float
    count_match_after: float        # viewers whose last told count equals sockets held
    count_observations_after: int
    broadcaster_interruptions: int
    broadcaster_reconnected: int
    writes_acked_before: int        # acknowledged before this fault's window ended
    writes_lost: int                # of those, missing or changed when read back
    writes_acked_run: int           # acknowledged in the whole run (the threshold's n)

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def _error_and_p95(frame: pd.DataFrame) -> tuple[float, float]:
    if frame.empty:
        return float("nan"), float("nan")
    latency = frame[frame.ok].latency_ms
    p95 = float(np.percentile(latency, 95)) if len(latency) else float("nan")
    return float(1.0 - frame.ok.mean()), p95


def _between(frame: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    return frame[(frame.ts >= start) & (frame.ts < end)]


def _done_before(frame: pd.DataFrame, ends_s: pd.Series, start: float,
                 end: float) -> pd.DataFrame:
    """Operations begun from `start` and over before `end` (`ends_s`: operation_end_s of
    `frame`); the baseline before a fault: a request in flight when it began is the fault's."""
    return frame[(frame.ts >= start) & (ends_s < end)]


def _overlapping(frame: pd.DataFrame, ends_s: pd.Series, start: float,
                 end: float) -> pd.DataFrame:
    """Operations in progress at some moment of [start, end)."""
    return frame[(frame.ts < end) & (ends_s >= start)]


def load_end(run: RunData) -> float:
    """End of the hold (the ramp-down's own effects are not a recovery)."""
    for stage in run.manifest.stages:
        if stage.name == "ramp_down":
            return stage.start
    return run.end_s


def _limits(baseline: tuple[float, float], slack: float) -> tuple[float, float]:
    """The error ratio and p95 (ms) a window may have and still count as back to baseline
    (`slack`: points of error ratio above the baseline's tolerated)."""
    base_error, base_p95 = baseline
    error_limit = max(0.0 if math.isnan(base_error) else base_error, 0.0) + slack
    p95_limit = math.inf if math.isnan(base_p95) else max(base_p95 * P95_FACTOR,
                                                          base_p95 + P95_SLACK_MS)
    return error_limit, p95_limit


def _sustained_from(traffic: pd.DataFrame, t: float, until: float,
                    baseline: tuple[float, float], check_p95: bool,
                    slack: float = ERROR_SLACK) -> float | None:
    """The first success at or after `t` from which SUSTAINED_S of traffic keeps errors (and,
    with `check_p95`, p95) at the baseline; None before `until`. `traffic` is sorted by ts.
    Scanned in STEP_S steps, then refined to the exact success within the last step."""
    ts = traffic.ts.to_numpy(dtype=np.float64)
    ok = traffic.ok.to_numpy(dtype=bool)
    latency_ms = traffic.latency_ms.to_numpy(dtype=np.float64)
    error_limit, p95_limit = _limits(baseline, slack)

    def at_baseline(begin: float) -> bool:
        lo, hi = np.searchsorted(ts, [begin, begin + SUSTAINED_S])
        if hi - lo < MIN_WINDOW_SAMPLES or 1.0 - ok[lo:hi].mean() > error_limit:
            return False
        good = latency_ms[lo:hi][ok[lo:hi]]
        return not check_p95 or len(good) == 0 or \
            float(np.percentile(good, 95)) <= p95_limit

    step_start = t
    while step_start + SUSTAINED_S <= until:
        if at_baseline(step_start):
            lo = int(np.searchsorted(ts, max(t, step_start - STEP_S), side="left"))
            hi = int(np.searchsorted(ts, step_start, side="right"))
            for index in range(lo, hi):
                if ok[index] and at_baseline(ts[index]):
                    return float(ts[index])
            after = np.flatnonzero(ok[hi:])
            return float(ts[hi + after[0]]) if len(after) else None
        step_start += STEP_S
    return None


def outage(traffic: pd.DataFrame, ends_s: pd.Series, start: float, end: float, until: float,
           baseline: tuple[float, float]) -> tuple[float | None, float | None]:
    """The outage users saw: (its first failure, its end) in epoch s. The first failure is
    the first failed operation in progress at or after the injection and before the fault
    window's end (clamped to the injection); its end the first success that begins
    SUSTAINED_S of traffic at (not above) the baseline's error ratio. (None, None): nothing
    failed; (t, None): the failures never stopped before `until`."""
    failed = _overlapping(traffic, ends_s, start, end)
    failed = failed[~failed.ok]
    if failed.empty:
        return None, None
    first = max(start, float(failed.ts.min()))
    # No slack: the outage lasts while failures go on above the baseline's own rate (a 10 s
    # window holding its last second of failures would pass a 1-point slack).
    return first, _sustained_from(traffic, first, until, baseline, check_p95=False, slack=0.0)


def recovered_at(traffic: pd.DataFrame, start: float, outage_end: float | None,
                 until: float, baseline: tuple[float, float]) -> float | None:
    """When errors and p95 are back at the baseline for SUSTAINED_S, searched from the
    outage's end (or the injection when nothing failed); None if never before `until`."""
    return _sustained_from(traffic, start if outage_end is None else outage_end, until,
                           baseline, check_p95=True)


def _viewers(run: RunData, start: float, end: float) -> tuple[int, int, int, list[float]]:
    """Viewers dropped by the fault, back within 30 s, never back, and the reconnect
    quantiles p50 / p95 / max in seconds."""
    events, samples = run.events, run.samples
    drops = events[(events.type == "viewer_dropped") & (events.ts >= start) &
                   (events.ts < end + DROP_GRACE_S)]
    reconnects = samples[(samples.kind == WS_RECONNECT) & (samples.ts >= start)]
    rejoined_s = (reconnects.ts + reconnects.latency_ms / 1000).groupby(
        reconnects.user, observed=True).min()
    # A viewer that then learned its stream had ended (a reconnect refused 410) before it got
    # back has nothing to come back to: the stream's end, not the fault, closed it. A 410 after
    # it got back (the run's end) says nothing about the fault.
    ended = events[(events.type == "stream_ended_seen") & (events.detail == STREAM_GONE_DETAIL) &
                   (events.ts >= start)]
    ended = ended[ended.ts < ended.user.astype(object).map(rejoined_s).fillna(math.inf)]
    users = set(drops.user.dropna()) - set(ended.user.dropna())
    nan = float("nan")
    if not users:
        return 0, 0, 0, [nan, nan, nan]
    back = reconnects[reconnects.user.isin(users)]
    first_back_s = back.groupby("user", observed=True).latency_ms.min() / 1000
    within = int((first_back_s <= BACK_WITHIN_S).sum())
    quantiles = [float(np.percentile(first_back_s, q)) for q in (50, 95, 100)] \
        if len(first_back_s) else [nan, nan, nan]
    return len(users), within, len(users) - len(first_back_s), quantiles


def _counts_after(run: RunData, start: float, until: float) -> tuple[float, int]:
    """Counts reconverged: of the viewers told a count between the fault's start and `until`,
    the share whose last told count equals the sockets held (transitional counts during a
    reconnect storm are not held against the target, the final word is)."""
    observed = observed_counts(run.events)
    observed = observed[(observed.ts >= start) & (observed.ts < until)]
    last = observed.sort_values("ts").drop_duplicates(["stream", "user"], keep="last")
    if last.empty:
        return float("nan"), 0
    return count_matches(run.events, last) / len(last), len(last)


def _broadcasters(run: RunData, start: float, end: float) -> tuple[int, int]:
    events, samples = run.events, run.samples
    cut = events[(events.type == "publish_interrupted") & (events.ts >= start) &
                 (events.ts < end + DROP_GRACE_S)]
    back = samples[(samples.kind == RTMP_PUBLISH) & (samples.name == "reconnect") &
                   samples.ok & (samples.ts >= start) & (samples.ts < end + DROP_GRACE_S)]
    return len(cut), len(back)


def write_outcomes(run: RunData) -> pd.DataFrame:
    """One row per acknowledged write: stream, when acknowledged, and the read-back outcome
    (write_verified | write_lost | write_changed | unchecked)."""
    events = run.events
    acked = events[events.type == "write_acked"][["ts", "stream"]]
    checked = events[events.type.isin(["write_verified", "write_lost", "write_changed"])]
    outcome = checked.drop_duplicates("stream", keep="last").set_index("stream").type
    frame = acked.assign(outcome=acked.stream.map(outcome).astype(object).fillna("unchecked"))
    return frame.reset_index(drop=True)


def figures(run: RunData) -> list[FaultFigures]:
    """Memoised per run (see RunData.memo); computed by _figures."""
    result: list[FaultFigures] = run.memo("faults.figures", lambda: _figures(run))
    return result


def _figures(run: RunData) -> list[FaultFigures]:
    """The figures of every fault window of the run."""
    samples = run.samples
    traffic = samples[samples.kind.isin(TRAFFIC_KINDS)].sort_values("ts", kind="stable")
    ends_s = operation_end_s(traffic)  # once, not per fault: a soak's traffic is millions of rows
    writes = write_outcomes(run)
    until = load_end(run)
    steady_start = next((float(p["start"]) for p in run.recorded_phases()
                         if p["name"] == "steady"),
                        run.start_s)
    out = []
    previous_end = steady_start
    # run.faults() holds only windows with a start and an end.
    windows = [(f, float(f.start or 0.0), float(f.end or 0.0)) for f in run.faults()]
    ordered = sorted(windows, key=lambda window: window[1])
    for number, (fault, start, end) in enumerate(ordered):
        next_start = ordered[number + 1][1] if number + 1 < len(ordered) else until
        base = _done_before(traffic, ends_s, max(start - BASELINE_S, previous_end), start)
        baseline = _error_and_p95(base)
        first_failure, outage_end = outage(traffic, ends_s, start, end, until, baseline)
        back_at = None if first_failure is not None and outage_end is None else \
            recovered_at(traffic, start, outage_end, until, baseline)
        # Inside the fault: from the injection to the later of the window's end and recovery.
        inside_end = max(end, back_at if back_at is not None else until)
        during = _error_and_p95(_overlapping(traffic, ends_s, start, inside_end))
        after = _error_and_p95(_between(traffic, inside_end, min(inside_end + BASELINE_S,
                                                                 until)))
        dropped, back, never, reconnect = _viewers(run, start, end)
        count_match, count_n = _counts_after(run, start, min(next_start, until))
        cut, rejoined = _broadcasters(run, start, end)
        before = writes[writes.ts < end]
        out.append(FaultFigures(
            id=fault.id, title=fault.title, start=start, end=end,
            status=fault.status, deviated=bool(fault.deviated),
            baseline_error_ratio=baseline[0], during_error_ratio=during[0],
            after_error_ratio=after[0], baseline_p95_ms=baseline[1], during_p95_ms=during[1],
            after_p95_ms=after[1],
            outage_s=_span(first_failure, outage_end, zero_if_none=True),
            outage_started_at=first_failure,
            recovery_s=_span(start, back_at), recovered_at=back_at,
            viewers_dropped=dropped, viewers_back_within_30s=back, viewers_never_back=never,
            reconnect_p50_s=reconnect[0], reconnect_p95_s=reconnect[1],
            reconnect_max_s=reconnect[2], count_match_after=count_match,
            count_observations_after=count_n, broadcaster_interruptions=cut,
            broadcaster_reconnected=rejoined, writes_acked_before=len(before),
            writes_lost=int(before.outcome.isin(["write_lost", "write_changed"]).sum()),
            writes_acked_run=len(writes)))
        previous_end = end
    return out


def judged_phases(run: RunData) -> list[dict[str, Any]]:
    """The run's recorded phases plus, after each fault window, its measured recovery: until
    errors and p95 were back at the baseline, at most RECOVERY_MAX_S when they never were.
    Only that stretch is left out of the thresholds of normal operation (docs/chaos.md). After
    a worker's loss, `worker_lost` to the end (judged, but nothing PASSes on it)."""
    phases = run.recorded_phases()
    until = max((float(p["end"]) for p in phases if p["name"] != "fault"), default=run.end_s)
    for figure in figures(run):
        if figure.recovered_at is not None:
            end = max(figure.end, figure.recovered_at)
        else:
            end = figure.end + RECOVERY_MAX_S
        phases.append({"name": "recovery", "start": figure.end, "end": min(end, until)})
    return phases + distributed.lost_worker_phases(run)


def _span(start: float | None, end: float | None, zero_if_none: bool = False) -> float | None:
    if start is None:
        return 0.0 if zero_if_none else None
    return None if end is None else round(max(0.0, end - start), 2)


FAULT_METRICS = {
    "faults_completed": "fault experiments that ran to completion (journal status completed)",
    "fault_recovery_s": "slowest time from a fault's injection until errors and p95 are back "
                        "at the pre-fault baseline for 10 s (inf if never)",
    "fault_outage_s": "longest outage users saw: first failed operation after a fault's "
                      "injection → first of a sustained run of successes (0 if nothing "
                      "failed, inf if the failures never stopped)",
    "viewers_back_within_30s_ratio": "viewers dropped by faults that reconnected within 30 s",
    "acked_writes_lost": "acknowledged writes missing or changed when read back after the run",
    "acked_writes_checked": "acknowledged writes read back after the run",
    "counts_reconverged_ratio": "viewers told a count during or after a fault whose last "
                                "told count equals the sockets held",
}


def derived(run: RunData, name: str) -> Estimate:
    """One of FAULT_METRICS (NaN when the run had no faults, so the line is inconclusive)."""
    if name in ("acked_writes_lost", "acked_writes_checked"):
        writes = write_outcomes(run)
        if writes.empty:
            return Estimate(float("nan"), None, None, 0)
        if name == "acked_writes_checked":
            share = float((writes.outcome != "unchecked").mean())
            return Estimate(share, None, None, len(writes))
        lost = int(writes.outcome.isin(["write_lost", "write_changed"]).sum())
        return Estimate(float(lost), None, None, len(writes))
    if name == "faults_completed":
        faults = run.faults()
        done = sum(f.status == "completed" for f in faults)
        return Estimate(float(done), None, None, len(faults))
    found = figures(run)
    if not found:
        return Estimate(float("nan"), None, None, 0)
    if name in ("fault_recovery_s", "fault_outage_s"):
        spans = [f.recovery_s if name == "fault_recovery_s" else f.outage_s for f in found]
        worst = max(math.inf if span is None else span for span in spans)
        return Estimate(worst, None, None, len(found))
    if name == "counts_reconverged_ratio":
        seen = sum(f.count_observations_after for f in found)
        matched = sum(f.count_match_after * f.count_observations_after for f in found
                      if f.count_observations_after)
        return Estimate(float(matched / seen) if seen else float("nan"), None, None, seen)
    if name == "viewers_back_within_30s_ratio":
        dropped = sum(f.viewers_dropped for f in found)
        back = sum(f.viewers_back_within_30s for f in found)
        # No viewer dropped: nothing to judge (the threshold's population is empty).
        return Estimate(back / dropped if dropped else float("nan"), None, None, dropped)
    raise KeyError(name)


def summary_json(run: RunData) -> list[dict[str, Any]]:
    return [f.to_json() for f in figures(run)]


def describe(figure: FaultFigures) -> str:
    """One line for summaries and the CLI: the outage as users saw it, the time from injection
    to recovery, errors and p95 before / inside / after, viewers, broadcasters and writes."""
    outage = "never ended" if figure.outage_s is None else \
        ("no operation failed" if figure.outage_s == 0 else f"{figure.outage_s:.1f} s")
    recovered = "not recovered before the load ended" if figure.recovery_s is None else \
        f"recovered {figure.recovery_s:.1f} s after injection"
    return (f"{figure.id} ({figure.title}): fault window {figure.end - figure.start:.1f} s; "
            f"outage seen by users {outage}; {recovered}; errors "
            f"{_pct(figure.baseline_error_ratio)} before → {_pct(figure.during_error_ratio)} "
            f"inside → {_pct(figure.after_error_ratio)} after, p95 "
            f"{_ms(figure.baseline_p95_ms)} → {_ms(figure.during_p95_ms)} → "
            f"{_ms(figure.after_p95_ms)}; viewers dropped "
            f"{figure.viewers_dropped} (back ≤30 s {figure.viewers_back_within_30s}, never "
            f"{figure.viewers_never_back}; reconnect p50 {_secs(figure.reconnect_p50_s)}, max "
            f"{_secs(figure.reconnect_max_s)}); final counts right for "
            f"{_pct(figure.count_match_after)} of {figure.count_observations_after} viewers; "
            f"broadcasters cut {figure.broadcaster_interruptions}"
            f", republished {figure.broadcaster_reconnected}; writes acknowledged before the "
            f"window ended {figure.writes_acked_before} (of {figure.writes_acked_run} in the "
            f"run, read back after it), lost {figure.writes_lost}")


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} ms"


def _secs(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} s"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"

