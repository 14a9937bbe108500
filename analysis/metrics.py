"""Figures computed from a run: derived load-test metrics (viewers connected vs
planned, stream completion, broadcaster activation) and per-window series for charts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import analytics
from analysis.analytics import ANALYTICS_METRICS
from analysis.consistency import CONSISTENCY_METRICS
from analysis.consistency import derived as consistency_derived
from analysis.counts import count_matches, observed_counts
from analysis.fault_verdicts import FAULT_METRICS, judged_phases
from analysis.fault_verdicts import derived as fault_derived
from analysis.load import RunData, outside_phases, phase_mask
from analysis.memory import memory_by_second
from analysis.stats import Estimate, percentile, ratio
from analysis.trends import TREND_METRICS
from analysis.trends import derived as trend_derived
from records.schema import (
    CYCLE_USER_PREFIX,
    HLS_SEGMENT,
    HLS_STALL,
    RTMP_PUBLISH,
    WS_CONNECT,
    WS_EVENT,
)


def included_seconds(run: RunData, exclude: Sequence[str]) -> float:
    """Seconds of the run outside every excluded phase (overlapping phases counted once)."""
    spans = sorted((max(float(p["start"]), run.start_s), min(float(p["end"]), run.end_s))
                   for p in judged_phases(run) if p["name"] in exclude)
    excluded, reach = 0.0, run.start_s
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            excluded += end - start
            reach = end
    return max(run.end_s - run.start_s - excluded, 1e-9)


def viewers_established(run: RunData) -> int:
    """Distinct planned viewers that received `connection_established` at least once."""
    samples = run.samples
    users = samples[(samples.kind == WS_EVENT) &
                    (samples.name == "connection_established")].user.astype(str)
    # A soak's cycle viewers come and go on top of the planned ones (harness/soak/cycles.py).
    return int(users[~users.str.startswith(CYCLE_USER_PREFIX)].nunique())


def derived(run: RunData, name: str) -> Estimate:
    """One of analysis.thresholds.DERIVED."""
    samples, events = run.samples, run.events
    planned = run.manifest.planned.viewers
    established = viewers_established(run)
    if name == "viewers_connected_ratio":
        return ratio(min(established, planned), planned)
    if name == "viewers_saw_start_ratio":
        saw = events[events.type == "stream_active_seen"].user.nunique()
        return ratio(min(saw, established), established)
    if name == "ws_connect_success_ratio":
        connects = samples[samples.kind == WS_CONNECT]
        return ratio(int(connects.ok.sum()), len(connects))
    if name == "stream_completion_ratio":
        created = set(events[events.type == "stream_created"].stream)
        active = set(events[events.type == "stream_active_api"].stream)
        failed = set(events[events.type == "publish_failed"].stream)
        return ratio(len((active - failed) & created), len(created))
    if name == "broadcaster_activation_s":
        activation = samples[samples.kind == RTMP_PUBLISH]
        if activation.empty:
            return Estimate(float("nan"), None, None, 0)
        worst = float(activation.latency_ms.max()) / 1000 if activation.ok.all() else float("inf")
        return Estimate(worst, None, None, len(activation))
    if name == "hls_stall_ratio":
        stalls = samples[samples.kind == HLS_STALL].latency_ms.sum() / 1000
        played = samples[(samples.kind == HLS_SEGMENT) & samples.ok]
        # Each fetched segment is ~one target duration (2 s) of playable media.
        played_s = 2.0 * len(played)
        if played_s == 0:
            return Estimate(float("nan"), None, None, 0)
        return Estimate(float(stalls / (stalls + played_s)), None, None, len(played))
    if name in ("target_cpu_share_p95", "harness_cpu_share_p95", "target_memory_share_max"):
        return _resource_share(run, name)
    if name == "viewer_count_match_ratio":
        return _count_match(run)
    if name == "api_memory_baseline_bytes":
        return _memory_baseline(run)
    if name in CONSISTENCY_METRICS:
        return consistency_derived(run, name)
    if name in ANALYTICS_METRICS:
        return analytics.derived(run, name)
    if name in TREND_METRICS:
        return trend_derived(run, name)
    if name in FAULT_METRICS:
        return fault_derived(run, name)
    if name == "generator_saturated_s":
        validity = run.manifest.validity
        return Estimate(validity.saturated_seconds if validity else 0.0, None, None, 1)
    raise KeyError(name)


def windows(ts: pd.Series, start_s: float, window_s: float) -> pd.Series:
    return ((ts - start_s) // window_s).astype(np.int64)


def latency_series(run: RunData, kind: str, window_s: float = 10.0,
                   name: str | None = None) -> pd.DataFrame:
    """p50/p95/p99 per window of one sample kind (for charts)."""
    frame = run.samples[run.samples.kind == kind]
    if name is not None:
        frame = frame[frame.name == name]
    if frame.empty:
        return pd.DataFrame(columns=["t_s", "p50", "p95", "p99", "n"])
    bins = windows(frame.ts, run.start_s, window_s)
    grouped = frame.latency_ms.groupby(bins)
    out = pd.DataFrame({"p50": grouped.quantile(0.5), "p95": grouped.quantile(0.95),
                        "p99": grouped.quantile(0.99), "n": grouped.size()})
    out["t_s"] = out.index * window_s
    return out.reset_index(drop=True)


def connected_series(run: RunData, step_s: float = 1.0) -> pd.DataFrame:
    """Open viewer sockets over time, from viewer_connected / viewer_closed events."""
    events = run.events[run.events.type.isin(["viewer_connected", "viewer_closed"])]
    if events.empty:
        return pd.DataFrame(columns=["t_s", "connected"])
    delta = np.where(events.type == "viewer_connected", 1, -1)
    frame = pd.DataFrame({"t_s": events.ts.to_numpy() - run.start_s, "d": delta})
    frame = frame.sort_values("t_s")
    frame["connected"] = frame.d.cumsum()
    bins = (frame.t_s // step_s) * step_s
    return frame.groupby(bins).connected.last().rename_axis("t_s").reset_index()


TARGET_ROLES = ("api", "postgres", "postgres-standby", "redis", "nginx")


def role_shares(run: RunData) -> pd.DataFrame:
    """Per whole second and role (the host's `system` row left out): CPU as a share of the
    target host's cores, memory (analysis/memory.py: summed PSS where recorded, else RSS) as a
    share of its memory (NaN when the memory is unknown)."""
    host = target_host(run)
    cpus, memory = float(host.get("cpus") or 1), float(host.get("memory_bytes") or 0)
    frame = run.resources[run.resources.role != "system"]
    frame = frame.assign(role=frame.role.astype(str))
    # Sample times differ slightly per process: bucket to whole seconds.
    grouped = frame.groupby([frame.ts.round(0).rename("second"), frame.role])
    shares = (grouped.cpu_pct.sum() / (100 * cpus)).rename("cpu_share").reset_index()
    wide = memory_by_second(frame, sorted(set(frame.role))) if memory else pd.DataFrame()
    if wide.empty:
        return shares.assign(mem_share=np.nan)
    used = (wide / memory).rename_axis(index="second").reset_index().melt(
        id_vars="second", var_name="role", value_name="mem_share")
    return shares.merge(used, on=["second", "role"], how="left")


def _resource_share(run: RunData, name: str) -> Estimate:
    """Summed over the target's roles per second (the harness's own share is reported
    apart), warm-up and cool-down excluded."""
    shares = role_shares(run)
    roles = ("harness",) if name.startswith("harness") else TARGET_ROLES
    shares = shares[shares.role.isin(roles)]
    shares = shares[phase_mask(shares.second, run.recorded_phases(), ["warmup", "cooldown"])]
    per_second = shares.groupby("second")[["cpu_share", "mem_share"]].sum(min_count=1)
    if per_second.empty:
        return Estimate(float("nan"), None, None, 0)
    if name == "target_memory_share_max":
        memory = per_second.mem_share.dropna()
        return Estimate(float(memory.max()), None, None, len(memory)) if len(memory) else \
            Estimate(float("nan"), None, None, 0)
    return percentile(per_second.cpu_share.to_numpy(dtype=np.float64), 0.95)


def target_host(run: RunData) -> dict[str, Any]:
    """The machine the target's shares divide by: `monitors.target_host` when the scenario
    names one (a remote target), else the harness's own host."""
    given = (run.manifest.scenario.get("monitors") or {}).get("target_host")
    return dict(given or run.manifest.host.model_dump())


BASELINE_S = 5.0


def _memory_baseline(run: RunData) -> Estimate:
    """Median over the first BASELINE_S seconds of the api role's RSS, instances summed per
    second: the service as the run found it, before the ramp had added many viewers. RSS, not
    PSS: the checklist's "≈ 256 MB" is what `ps` and `top` show for the service."""
    frame = run.resources[(run.resources.role == "api") &
                          (run.resources.ts < run.start_s + BASELINE_S)]
    if frame.empty:
        return Estimate(float("nan"), None, None, 0)
    per_second = frame.groupby(frame.ts.round(0)).rss_bytes.sum()
    return Estimate(float(per_second.median()), None, None, len(per_second))


def _count_match(run: RunData) -> Estimate:
    """Share of the viewer counts the target told viewers (viewer_count_changed) that equal
    the sockets the harness held (analysis.counts), warm-up and cool-down excluded."""
    observed = observed_counts(run.events)
    observed = outside_phases(observed, run.recorded_phases(), ["warmup", "cooldown"])
    if observed.empty:
        return Estimate(float("nan"), None, None, 0)
    return ratio(count_matches(run.events, observed), len(observed))
