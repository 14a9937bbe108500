"""§14 viewer-count consistency: does a viewer count the target told viewers equal the sockets
the harness held on that stream? Shared by the whole-run metric and the per-fault
reconvergence check."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Coalescing (≤ 100 ms) and delivery: a told count may describe the sockets held up to this
# long before it arrived.
COUNT_TOLERANCE_S = 1.0


def observed_counts(events: pd.DataFrame) -> pd.DataFrame:
    return events[events.type == "viewer_count_observed"]


def count_matches(events: pd.DataFrame, observed: pd.DataFrame) -> int:
    """How many of `observed` (viewer_count_observed rows) equal the sockets the harness held
    on that stream at some moment in the COUNT_TOLERANCE_S before."""
    events = events.sort_values("ts")
    held = events[events.type.isin(["viewer_connected", "viewer_closed"])]
    matches = 0
    for stream, seen in observed.groupby("stream", observed=True):
        mine = held[held.stream == stream]
        times = mine.ts.to_numpy(dtype=np.float64)
        counts = np.cumsum(np.where(mine.type == "viewer_connected", 1, -1))
        for ts, value in zip(seen.ts.to_numpy(), seen.value.to_numpy(), strict=True):
            first = int(np.searchsorted(times, ts - COUNT_TOLERANCE_S, side="right"))
            last = int(np.searchsorted(times, ts, side="right"))
            window = counts[max(first - 1, 0):last] if last else np.array([0])
            matches += int(value in window)
    return matches
