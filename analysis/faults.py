"""Fault verdict figures, from the load traffic itself (docs/chaos.md): for each fault window,
error ratio and p95 before / during / after, time to recover, viewers dropped and how fast they
came back, broadcaster reconnects, and the acknowledged-write (data-loss) check."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.counts import count_matches, observed_counts
from analysis.load import RunData, operation_end_s
from analysis.stats import Estimate

# The request traffic a fault is judged on: API calls, viewer (re)connects, socket round trips.
TRAFFIC_KINDS = ("http", "ws_connect", "ws_rtt")
BASELINE_S = 30.0
SUSTAINED_S = 10.0
STEP_S = 0.5
MIN_WINDOW_SAMPLES = 5
ERROR_SLACK = 0.01       # recovered: error ratio within 1 point of the baseline's
P95_FACTOR, P95_SLACK_MS = 1.5, 50.0  # ... and p95 within 1.5x (or 50 ms) of the baseline's
DROP_GRACE_S = 5.0       # drops this long after a fault's end still belong to it
BACK_WITHIN_S = 30.0


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
    recovery_s: float | None        # None: not back to baseline before the load ended
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
    writes_acked_before: int
    writes_lost: int

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
    for stage in run.manifest.get("stages") or []:
        if stage.get("name") == "ramp_down":
            return float(stage["start"])
    return run.end_s


def recovery_s(traffic: pd.DataFrame, fault_end: float, until: float,
               baseline: tuple[float, float]) -> float | None:
    """Seconds from the fault's end until error ratio and p95 stay at baseline for
    SUSTAINED_S; None if that never happens before `until`."""
    base_error, base_p95 = baseline
    error_limit = max(0.0 if math.isnan(base_error) else base_error, 0.0) + ERROR_SLACK
    p95_limit = math.inf if math.isnan(base_p95) else max(base_p95 * P95_FACTOR,
                                                          base_p95 + P95_SLACK_MS)
    t = fault_end
    while t + SUSTAINED_S <= until:
        window = _between(traffic, t, t + SUSTAINED_S)
        if len(window) >= MIN_WINDOW_SAMPLES:
            error, p95 = _error_and_p95(window)
            if error <= error_limit and (math.isnan(p95) or p95 <= p95_limit):
                return round(t - fault_end, 2)
        t += STEP_S
    return None


def _viewers(run: RunData, start: float, end: float) -> tuple[int, int, int, list[float]]:
    """Viewers dropped by the fault, back within 30 s, never back, and the reconnect
    quantiles p50 / p95 / max in seconds."""
    events, samples = run.events, run.samples
    drops = events[(events.type == "viewer_dropped") & (events.ts >= start) &
                   (events.ts < end + DROP_GRACE_S)]
    reconnects = samples[(samples.kind == "ws_reconnect") & (samples.ts >= start)]
    rejoined_s = (reconnects.ts + reconnects.latency_ms / 1000).groupby(
        reconnects.user, observed=True).min()
    # A viewer that then learned its stream had ended (a reconnect refused 410) before it got
    # back has nothing to come back to: the stream's end, not the fault, closed it. A 410 after
    # it got back (the run's end) says nothing about the fault.
    ended = events[(events.type == "stream_ended_seen") & (events.detail == "http_410") &
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
    back = samples[(samples.kind == "rtmp_publish") & (samples.name == "reconnect") &
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
    traffic = samples[samples.kind.isin(TRAFFIC_KINDS)]
    ends_s = operation_end_s(traffic)  # once, not per fault: a soak's traffic is millions of rows
    writes = write_outcomes(run)
    until = load_end(run)
    steady_start = next((float(p["start"]) for p in run.phases() if p["name"] == "steady"),
                        run.start_s)
    out = []
    previous_end = steady_start
    ordered = sorted(run.faults(), key=lambda f: f["start"])
    for number, fault in enumerate(ordered):
        start, end = float(fault["start"]), float(fault["end"])
        next_start = float(ordered[number + 1]["start"]) if number + 1 < len(ordered) else until
        base = _done_before(traffic, ends_s, max(start - BASELINE_S, previous_end), start)
        baseline = _error_and_p95(base)
        during = _error_and_p95(_overlapping(traffic, ends_s, start, end))
        after = _error_and_p95(_between(traffic, end, min(end + BASELINE_S, until)))
        dropped, back, never, reconnect = _viewers(run, start, end)
        count_match, count_n = _counts_after(run, start, min(next_start, until))
        cut, rejoined = _broadcasters(run, start, end)
        before = writes[writes.ts < end]
        out.append(FaultFigures(
            id=str(fault.get("id")), title=str(fault.get("title", "")), start=start, end=end,
            status=str(fault.get("status")), deviated=bool(fault.get("deviated")),
            baseline_error_ratio=baseline[0], during_error_ratio=during[0],
            after_error_ratio=after[0], baseline_p95_ms=baseline[1], during_p95_ms=during[1],
            after_p95_ms=after[1], recovery_s=recovery_s(traffic, end, until, baseline),
            viewers_dropped=dropped, viewers_back_within_30s=back, viewers_never_back=never,
            reconnect_p50_s=reconnect[0], reconnect_p95_s=reconnect[1],
            reconnect_max_s=reconnect[2], count_match_after=count_match,
            count_observations_after=count_n, broadcaster_interruptions=cut,
            broadcaster_reconnected=rejoined, writes_acked_before=len(before),
            writes_lost=int(before.outcome.isin(["write_lost", "write_changed"]).sum())))
        previous_end = end
    return out


FAULT_METRICS = {
    "faults_completed": "fault experiments that ran to completion (journal status completed)",
    "fault_recovery_s": "slowest time from a fault's end until errors and p95 are back to "
                        "the pre-fault baseline for 10 s (inf if never)",
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
        done = sum(f.get("status") == "completed" for f in faults)
        return Estimate(float(done), None, None, len(faults))
    found = figures(run)
    if not found:
        return Estimate(float("nan"), None, None, 0)
    if name == "fault_recovery_s":
        worst = max(math.inf if f.recovery_s is None else f.recovery_s for f in found)
        return Estimate(worst, None, None, len(found))
    if name == "counts_reconverged_ratio":
        seen = sum(f.count_observations_after for f in found)
        matched = sum(f.count_match_after * f.count_observations_after for f in found
                      if f.count_observations_after)
        return Estimate(float(matched / seen) if seen else float("nan"), None, None, seen)
    if name == "viewers_back_within_30s_ratio":
        dropped = sum(f.viewers_dropped for f in found)
        back = sum(f.viewers_back_within_30s for f in found)
        return Estimate(1.0 if dropped == 0 else back / dropped, None, None, dropped)
    raise KeyError(name)


def summary_json(run: RunData) -> list[dict[str, Any]]:
    return [f.to_json() for f in figures(run)]


def describe(figure: FaultFigures) -> str:
    """One line for summaries and the CLI."""
    recovered = "not recovered" if figure.recovery_s is None else \
        f"recovered {figure.recovery_s:.1f} s after"
    return (f"{figure.id} ({figure.title}): {figure.end - figure.start:.1f} s, errors "
            f"{_pct(figure.baseline_error_ratio)} → {_pct(figure.during_error_ratio)} → "
            f"{_pct(figure.after_error_ratio)}, {recovered}; viewers dropped "
            f"{figure.viewers_dropped} (back ≤30 s {figure.viewers_back_within_30s}, never "
            f"{figure.viewers_never_back}; reconnect p50 {_secs(figure.reconnect_p50_s)}, max "
            f"{_secs(figure.reconnect_max_s)}); final counts right for "
            f"{_pct(figure.count_match_after)} of {figure.count_observations_after} viewers; "
            f"broadcasters cut {figure.broadcaster_interruptions}"
            f", republished {figure.broadcaster_reconnected}; acknowledged writes before its "
            f"end {figure.writes_acked_before}, lost {figure.writes_lost}")


def _secs(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} s"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"

