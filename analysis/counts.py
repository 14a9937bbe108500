"""§14 viewer-count consistency: does a viewer count the target reported equal the sockets
the harness held on that stream? Shared by the whole-run consistency figures and the per-fault
reconvergence check."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

# Coalescing (≤ 100 ms) and delivery: a told count may describe the sockets held up to this
# long before it arrived.
COUNT_TOLERANCE_S = 1.0


def observed_counts(events: pd.DataFrame) -> pd.DataFrame:
    return events[events.type == "viewer_count_observed"]


def _held_steps(events: pd.DataFrame) -> dict[str, tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Per stream: times the harness's open sockets changed, and the count after each."""
    held = events[events.type.isin(["viewer_connected", "viewer_closed"])].sort_values("ts")
    steps = {}
    for stream, mine in held.groupby("stream", observed=True):
        steps[str(stream)] = (mine.ts.to_numpy(dtype=np.float64),
                              np.cumsum(np.where(mine.type == "viewer_connected", 1, -1)))
    return steps


def held_matches(events: pd.DataFrame, readings: pd.DataFrame,
                 before_s: float = COUNT_TOLERANCE_S, after_s: float = 0.0) -> NDArray[np.bool_]:
    """Per reading (rows with ts, stream, value): whether the value equals the sockets the
    harness held on that stream at some moment in [ts - before_s, ts + after_s]."""
    steps = _held_steps(events)
    out = np.zeros(len(readings), dtype=bool)
    empty = (np.zeros(0), np.zeros(0, dtype=np.int64))
    for position, (ts, stream, value) in enumerate(zip(
            readings.ts.to_numpy(), readings.stream.to_numpy(), readings.value.to_numpy(),
            strict=True)):
        times, counts = steps.get(str(stream), empty)
        first = int(np.searchsorted(times, ts - before_s, side="right"))
        last = int(np.searchsorted(times, ts + after_s, side="right"))
        # The count in force at the window's start, then every count set inside it.
        window = counts[first - 1:last] if first else np.concatenate(([0], counts[:last]))
        out[position] = value in window
    return out


def held_at(events: pd.DataFrame, readings: pd.DataFrame) -> NDArray[np.int64]:
    """Per reading: the sockets the harness held on its stream at the reading's time."""
    steps = _held_steps(events)
    out = np.zeros(len(readings), dtype=np.int64)
    for position, (ts, stream) in enumerate(zip(readings.ts.to_numpy(),
                                                readings.stream.to_numpy(), strict=True)):
        times, counts = steps.get(str(stream), (np.zeros(0), np.zeros(0, dtype=np.int64)))
        index = int(np.searchsorted(times, ts, side="right"))
        out[position] = counts[index - 1] if index else 0
    return out


def count_matches(events: pd.DataFrame, observed: pd.DataFrame) -> int:
    """How many of `observed` (viewer_count_observed rows) equal the sockets the harness held
    on that stream at some moment in the COUNT_TOLERANCE_S before."""
    return int(held_matches(events, observed).sum())
