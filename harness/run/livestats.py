"""Running figures for the terminal progress display, fed by the same rows as the Recorder."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from records.recorder import Recorder
from records.schema import (
    CYCLE_USER_PREFIX,
    HTTP,
    ROW_TYPES,
    WS_EVENT,
    EventRow,
    Row,
    SampleRow,
    table_of,
)

# The display looks back at most this far; older entries are dropped as new ones arrive, so
# memory follows the event rate, not the run's length (a count bound alone would let a soak's
# deques grow for hours until they filled).
KEEP_S = 15.0


class LiveStats:
    """A RowSink that forwards to the Recorder and keeps a few rolling counters."""

    def __init__(self, recorder: Recorder,
                 observers: Sequence[Callable[[Row], None]] = ()) -> None:
        self.recorder = recorder
        self.observers = tuple(observers)  # more consumers of every row (the metrics series)
        self.connected: Counter[str] = Counter()
        self.ever_connected: set[str] = set()  # steady viewers only, not a soak's cycles
        self.ws_events: deque[float] = deque()
        self.push_ms: deque[tuple[float, float]] = deque()
        self.http: deque[tuple[float, bool]] = deque()

    def add(self, row: Row) -> None:
        self.recorder.add(table_of(row), row)
        self._observe(row)

    def add_many(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows a worker shipped, as plain lists (the message format has no row types)."""
        self.recorder.add_many(table, rows)
        row_type = ROW_TYPES[table]
        for row in rows:
            if len(row) == len(row_type._fields):  # the Recorder counted any misfit
                self._observe(row_type._make(row))

    def _observe(self, row: Row) -> None:
        for observer in self.observers:
            observer(row)
        if isinstance(row, SampleRow):
            if row.kind == WS_EVENT:
                _append(self.ws_events, row.ts, row.ts)
                if row.ok:
                    _append(self.push_ms, (row.ts, row.latency_ms), row.ts)
            elif row.kind == HTTP:
                _append(self.http, (row.ts, bool(row.ok)), row.ts)
        elif isinstance(row, EventRow) and row.stream is not None:
            if row.type == "viewer_connected":
                self.connected[row.stream] += 1
                if row.user is not None and not row.user.startswith(CYCLE_USER_PREFIX):
                    self.ever_connected.add(row.user)
            elif row.type == "viewer_closed":
                self.connected[row.stream] -= 1

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
