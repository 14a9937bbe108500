"""Figures computed from a run: phase masks, derived load-test metrics (viewers connected vs
planned, stream completion, broadcaster activation) and per-window series for charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import Estimate, ratio


def phase_mask(ts: pd.Series, phases: Sequence[Mapping[str, Any]],
               exclude: Sequence[str]) -> pd.Series:
    """True for rows outside every excluded phase."""
    keep = pd.Series(True, index=ts.index)
    for phase in phases:
        if phase["name"] in exclude:
            keep &= ~((ts >= phase["start"]) & (ts < phase["end"]))
    return keep


def included_seconds(run: RunData, exclude: Sequence[str]) -> float:
    total = run.end_s - run.start_s
    for phase in run.phases():
        if phase["name"] in exclude:
            total -= max(0.0, min(phase["end"], run.end_s) - max(phase["start"], run.start_s))
    return max(total, 1e-9)


def derived(run: RunData, name: str) -> Estimate:
    """One of analysis.thresholds.DERIVED."""
    samples, events = run.samples, run.events
    planned = int(run.manifest.get("planned", {}).get("viewers") or 0)
    established = samples[(samples.kind == "ws_event") &
                          (samples.name == "connection_established")].user.nunique()
    if name == "viewers_connected_ratio":
        return ratio(min(established, planned), planned)
    if name == "viewers_saw_start_ratio":
        saw = events[events.type == "stream_active_seen"].user.nunique()
        return ratio(min(saw, established), established)
    if name == "ws_connect_success_ratio":
        connects = samples[samples.kind == "ws_connect"]
        return ratio(int(connects.ok.sum()), len(connects))
    if name == "stream_completion_ratio":
        created = set(events[events.type == "stream_created"].stream)
        active = set(events[events.type == "stream_active_api"].stream)
        failed = set(events[events.type == "publish_failed"].stream)
        return ratio(len((active - failed) & created), len(created))
    if name == "broadcaster_activation_s":
        activation = samples[samples.kind == "rtmp_publish"]
        if activation.empty:
            return Estimate(float("nan"), None, None, 0)
        worst = float(activation.latency_ms.max()) / 1000 if activation.ok.all() else float("inf")
        return Estimate(worst, None, None, len(activation))
    if name == "hls_stall_ratio":
        stalls = samples[samples.kind == "hls_stall"].latency_ms.sum() / 1000
        played = samples[(samples.kind == "hls_segment") & samples.ok]
        # Each fetched segment is ~one target duration (2 s) of playable media.
        played_s = 2.0 * len(played)
        if played_s == 0:
            return Estimate(float("nan"), None, None, 0)
        return Estimate(float(stalls / (stalls + played_s)), None, None, len(played))
    if name == "generator_saturated_s":
        validity = run.manifest.get("validity") or {}
        return Estimate(float(validity.get("saturated_seconds", 0)), None, None, 1)
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
