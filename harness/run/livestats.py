"""Running figures for the terminal progress display, fed by the same rows as the Recorder."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from records.recorder import Recorder
from records.schema import CYCLE_USER_PREFIX

# The display looks back at most this far; older entries are dropped as new ones arrive, so
# memory follows the event rate, not the run's length (a count bound alone would let a soak's
# deques grow for hours until they filled).
KEEP_S = 15.0


class LiveStats:
    """A RowSink that forwards to the Recorder and keeps a few rolling counters."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.connected: Counter[str] = Counter()
        self.ever_connected: set[str] = set()  # steady viewers only, not a soak's cycles
        self.ws_events: deque[float] = deque()
        self.push_ms: deque[tuple[float, float]] = deque()
        self.http: deque[tuple[float, bool]] = deque()

    def add(self, table: str, row: Sequence[Any]) -> None:
        self.recorder.add(table, row)
        self._observe(table, row)

    def add_many(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        self.recorder.add_many(table, rows)
        for row in rows:
            self._observe(table, row)

    def _observe(self, table: str, row: Sequence[Any]) -> None:
        if table == "samples":
            kind, ts = row[2], row[0]
            if kind == "ws_event":
                _append(self.ws_events, ts, ts)
                if row[5]:
                    _append(self.push_ms, (ts, row[4]), ts)
            elif kind == "http":
                _append(self.http, (ts, bool(row[5])), ts)
        elif table == "events":
            kind, stream, user = row[1], row[2], row[3]
            if kind == "viewer_connected":
                self.connected[stream] += 1
                if not str(user).startswith(CYCLE_USER_PREFIX):
                    self.ever_connected.add(user)
            elif kind == "viewer_closed":
                self.connected[stream] -= 1

    def events_per_s(self, window_s: float = 5.0) -> float:
        cutoff = time.time() - window_s
        return sum(1 for t in reversed(self.ws_events) if t >= cutoff) / window_s

    def push_p95_ms(self, window_s: float = 10.0) -> float | None:
        cutoff = time.time() - window_s
        recent = sorted(v for t, v in self.push_ms if t >= cutoff)
        return recent[int(0.95 * (len(recent) - 1))] if recent else None

    def http_rate(self, window_s: float = 5.0) -> tuple[float, int]:
        cutoff = time.time() - window_s
        recent = [ok for t, ok in self.http if t >= cutoff]
        return len(recent) / window_s, sum(1 for ok in recent if not ok)


def _append(window: deque[Any], item: Any, ts: float) -> None:
    window.append(item)
    oldest = window[0]
    while (oldest if isinstance(oldest, float) else oldest[0]) < ts - KEEP_S:
        window.popleft()
        oldest = window[0]
