"""§14 data consistency: what the target reports against what the harness really did.

- viewer counts from four places — told to viewers over the socket, `GET /streams/{id}`, the
  per-stream `/metrics` gauge, and open sessions in the database — against the sockets the
  harness held (analysis.counts): share that match, error, and how long a mismatch lasted;
- stream metadata (title, description, region) read back after the run as it was created;
- timestamps: created ≤ started ≤ ended, each within tolerance of the harness's own clock;
- the active-streams gauge against the database's count;
- every stream the harness started and stopped recorded as ended.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis.counts import COUNT_TOLERANCE_S, held_at, held_matches, observed_counts
from analysis.load import RunData, outside_phases
from analysis.stats import Estimate, ratio

# Per-stream viewer gauge of the reference service (contract section 5 leaves the per-stream
# series' name open; the reference exports this one across all instances).
STREAM_VIEWERS_SERIES = "nova_streaming_stream_viewers"
# Polled readings are taken at one instant; the database's session rows are written in the
# background after a join or leave, so they may trail the socket by a little more.
SOURCE_TOLERANCE_S = {"ws": COUNT_TOLERANCE_S, "api": 1.0, "metrics": 1.0, "db": 2.0}
CLOCK_TOLERANCE_S = 2.0
GAUGE_DB_WINDOW_S = 6.0
# A poll this close to a scrape was taken with it (the two sources are polled on one tick).
GAUGE_DB_PAIR_S = 1.0
EXCLUDED_PHASES = ("warmup", "cooldown")

CONSISTENCY_METRICS = {
    "viewer_count_api_match_ratio": "API viewer_count readings equal to the sockets held",
    "viewer_count_metrics_match_ratio": "per-stream /metrics gauge readings equal to sockets held",
    "viewer_count_db_match_ratio": "open viewer sessions in the database equal to sockets held",
    "viewer_count_converge_s": "longest time any reported viewer count stayed wrong, seconds",
    "stream_metadata_preserved_ratio": "streams read back with the title/description/region sent",
    "stream_timestamps_consistent_ratio": "streams with created ≤ started ≤ ended, each within "
                                          f"{CLOCK_TOLERANCE_S:g} s of the harness's clock",
    "active_streams_gauge_db_match_ratio": "active-streams gauge readings equal to the "
                                           "database's count of active streams",
    "streams_ended_recorded_ratio": "streams the harness started and stopped that read back "
                                    "`ended` with ended_at set",
}


@dataclass(frozen=True)
class SourceFigures:
    """One viewer-count source over the judged phases."""

    source: str
    readings: int
    matched: int
    mean_abs_error: float
    max_abs_error: int
    longest_mismatch_s: float


def _steady(run: RunData, frame: pd.DataFrame) -> pd.DataFrame:
    return outside_phases(frame, run.recorded_phases(), EXCLUDED_PHASES)


def reported_counts(run: RunData, judged_only: bool = True) -> dict[str, pd.DataFrame]:
    """Source → readings (ts, stream, value) of the run's streams (judged phases only,
    unless `judged_only` is false)."""
    events, metrics = run.events, run.metrics
    streams = set(events[events.type == "stream_created"].stream)
    frames = {"ws": observed_counts(events), "api": events[events.type == "viewer_count_api"],
              "metrics": _labelled(metrics[metrics.series == STREAM_VIEWERS_SERIES], "stream_id"),
              "db": _labelled(metrics[metrics.series == "db_open_viewer_sessions"], "stream")}
    out = {}
    for source, frame in frames.items():
        frame = frame[["ts", "stream", "value"]]
        frame = _steady(run, frame) if judged_only else frame
        out[source] = frame[frame.stream.isin(streams)].sort_values("ts")
    return out


def _labelled(rows: pd.DataFrame, label: str) -> pd.DataFrame:
    prefix = f"{label}="
    stream = rows.labels.astype(str).map(
        lambda labels: next((part[len(prefix):] for part in labels.split(",")
                             if part.startswith(prefix)), ""))
    return rows.assign(stream=stream)


def source_figures(run: RunData) -> list[SourceFigures]:
    """Memoised per run (see RunData.memo); computed by _source_figures."""
    result: list[SourceFigures] = run.memo("consistency.sources", lambda: _source_figures(run))
    return result


def _source_figures(run: RunData) -> list[SourceFigures]:
    """Match share, error and longest mismatch of every source that has readings."""
    figures = []
    for source, readings in reported_counts(run).items():
        if readings.empty:
            continue
        matched = held_matches(run.events, readings, SOURCE_TOLERANCE_S[source],
                               SOURCE_TOLERANCE_S[source] if source != "ws" else 0.0)
        error = np.abs(readings.value.to_numpy() - held_at(run.events, readings))
        figures.append(SourceFigures(
            source, len(readings), int(matched.sum()), float(error.mean()), int(error.max()),
            _longest_mismatch_s(readings.assign(matched=matched))))
    return figures


def _longest_mismatch_s(readings: pd.DataFrame) -> float:
    """Per stream, from the first wrong reading to the next right one (or the last reading,
    if it never came right); the longest over streams."""
    longest = 0.0
    for _, mine in readings.groupby("stream", observed=True):
        wrong_since: float | None = None
        for ts, matched in zip(mine.ts.to_numpy(), mine.matched.to_numpy(), strict=True):
            if not matched and wrong_since is None:
                wrong_since = float(ts)
            elif matched and wrong_since is not None:
                longest, wrong_since = max(longest, float(ts) - wrong_since), None
        if wrong_since is not None:
            longest = max(longest, float(mine.ts.max()) - wrong_since)
    return longest


def derived(run: RunData, name: str) -> Estimate:
    """One of CONSISTENCY_METRICS."""
    if name.startswith("viewer_count_"):
        figures = {f.source: f for f in source_figures(run)}
        if name == "viewer_count_converge_s":
            if not figures:
                return Estimate(math.nan, None, None, 0)
            return Estimate(max(f.longest_mismatch_s for f in figures.values()), None, None,
                            sum(f.readings for f in figures.values()))
        found = figures.get(name.split("_")[2])
        return ratio(found.matched, found.readings) if found else Estimate(math.nan, None,
                                                                          None, 0)
    if name == "stream_metadata_preserved_ratio":
        return _per_stream(run, _metadata_kept)
    if name == "stream_timestamps_consistent_ratio":
        return _per_stream(run, _timestamps_consistent)
    if name == "streams_ended_recorded_ratio":
        return _per_stream(run, _ended_recorded, only_stopped=True)
    if name == "active_streams_gauge_db_match_ratio":
        return _gauge_vs_db(run)
    raise KeyError(name)


def readbacks(run: RunData) -> dict[str, dict[str, Any]]:
    rows = run.events[run.events.type == "stream_readback"]
    return {str(s): json.loads(d) for s, d in zip(rows.stream, rows.detail, strict=True)}


def _per_stream(run: RunData, check: Any, only_stopped: bool = False) -> Estimate:
    events = run.events
    read = readbacks(run)
    streams = list(dict.fromkeys(events[events.type == "stream_created"].stream))
    if only_stopped:
        stopped = set(events[events.type.isin(["publish_stopped", "publish_interrupted"])
                             & events.stream.isin(set(events[events.type == "stream_active_api"]
                                                      .stream))].stream)
        streams = [s for s in streams if s in stopped]
    judged = [s for s in streams if s in read]
    if not judged:
        return Estimate(math.nan, None, None, 0)
    good = sum(bool(check(events[events.stream == s], read[s])) for s in judged)
    return ratio(good, len(judged))


def problems(run: RunData) -> dict[str, list[str]]:
    """Stream → what is wrong with its metadata, timestamps or end (for the report)."""
    out: dict[str, list[str]] = {}
    events = run.events
    for stream, seen in readbacks(run).items():
        mine = events[events.stream == stream]
        wrong = [*(_metadata_diff(mine, seen)), *(_timestamp_problems(mine, seen))]
        if wrong:
            out[stream] = wrong
    return out


def _metadata_diff(mine: pd.DataFrame, seen: dict[str, Any]) -> list[str]:
    created = mine[mine.type == "stream_created"].detail
    if created.empty:
        return []
    try:
        asked = json.loads(created.iloc[0])
    except (TypeError, ValueError):
        return []  # a run from before the payload was recorded
    if not isinstance(asked, dict):
        return []
    return [f"{k}: sent {v!r}, read back {seen.get(k)!r}" for k, v in asked.items()
            if seen.get(k) != v]


def _metadata_kept(mine: pd.DataFrame, seen: dict[str, Any]) -> bool:
    return not _metadata_diff(mine, seen)


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _near(value: float | None, low: float, high: float) -> bool:
    return value is not None and low - CLOCK_TOLERANCE_S <= value <= high + CLOCK_TOLERANCE_S


def _timestamp_problems(mine: pd.DataFrame, seen: dict[str, Any]) -> list[str]:
    created, started, ended = (_ts(seen.get(k)) for k in ("created_at", "started_at",
                                                          "ended_at"))
    times = {t: mine[mine.type == t].ts.to_numpy() for t in (
        "stream_created", "publish_started", "stream_active_api", "publish_stopped",
        "publish_interrupted")}
    wrong = []
    stamps = [t for t in (created, started, ended) if t is not None]
    if stamps != sorted(stamps):
        wrong.append("created_at ≤ started_at ≤ ended_at does not hold")
    if len(times["stream_created"]) and not _near(created, times["stream_created"].min(),
                                                  times["stream_created"].min()):
        wrong.append("created_at is not when the harness created the stream")
    if len(times["stream_active_api"]) and not _near(
            started, times["publish_started"].min(initial=math.inf),
            times["stream_active_api"].min()):
        wrong.append("started_at is not between the publish and the API reporting active")
    ends = np.concatenate([times["publish_stopped"], times["publish_interrupted"]])
    if len(times["stream_active_api"]) and len(ends) and not any(
            _near(ended, end, end) for end in ends):
        wrong.append("ended_at is not when the harness's publisher stopped")
    return wrong


def _timestamps_consistent(mine: pd.DataFrame, seen: dict[str, Any]) -> bool:
    return not _timestamp_problems(mine, seen)


def _ended_recorded(mine: pd.DataFrame, seen: dict[str, Any]) -> bool:
    return seen.get("status") == "ended" and _ts(seen.get("ended_at")) is not None


def _gauge_vs_db(run: RunData) -> Estimate:
    metrics = _steady(run, run.metrics)
    # One reading per scrape, summed over regions.
    gauge = metrics[metrics.series == "nova_streaming_active_streams"].groupby("ts").value.sum()
    db = metrics[metrics.series == "db_active_streams"]
    if gauge.empty or db.empty:
        return Estimate(math.nan, None, None, 0)
    db_ts, db_value = db.ts.to_numpy(), db.value.to_numpy()
    compared = matched = 0
    for ts, value in gauge.items():
        offsets_s = db_ts - ts
        if not _db_state_known(offsets_s):
            continue
        compared += 1
        matched += bool(np.any((np.abs(offsets_s) <= GAUGE_DB_WINDOW_S) & (db_value == value)))
    return ratio(matched, compared)


def _db_state_known(offsets_s: np.ndarray) -> bool:
    """Whether the database was polled with a scrape (offsets: poll times minus the scrape's),
    or on both sides of it within the window. A scrape after the last poll (a run's end, a
    failed poll) would otherwise be held against a count the database may no longer have."""
    if np.any(np.abs(offsets_s) <= GAUGE_DB_PAIR_S):
        return True
    return bool(np.any((offsets_s < 0) & (offsets_s >= -GAUGE_DB_WINDOW_S))
                and np.any((offsets_s > 0) & (offsets_s <= GAUGE_DB_WINDOW_S)))
