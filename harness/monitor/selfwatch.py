"""The generator watches itself: CPU of this process, event-loop lag (how late a 100 ms sleep
wakes), RSS, and every PSS_INTERVAL_S its PSS and anonymous PSS (its growth is judged on the
anonymous part, the same measure as the target's roles), with two figures that say what a
growth is made of (metrics rows, source `harness`): the blocks Python's allocator holds for
live objects and the bytes Arrow's pool has allocated. Anonymous memory growing while both
stay flat is the allocators keeping freed memory, not a leak. A generator that is saturated
marks the run invalid instead of blaming the target."""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import psutil
import pyarrow as pa

from harness.load.context import UserContext
from harness.monitor.processes import PSS_INTERVAL_S, smaps_totals
from harness.runtime.periodic import Every
from records.schema import MetricRow, ResourceRow

SATURATED_CPU_PCT = 90.0
SATURATED_LAG_MS = 100.0
SATURATED_FOR_S = 5


@dataclass
class SelfWatch:
    """Samples every second into `resources` (role `harness`) and keeps the verdict inputs."""

    ctx: UserContext
    interval_s: float = 1.0
    cpu_max_pct: float = 0.0
    lag_max_ms: float = 0.0
    saturated_seconds: int = 0
    _streak: int = 0
    _lags_ms: list[float] = field(default_factory=list)
    _lag_greenlet: Any = None
    _sampler: Every | None = None
    _pss_at: float = float("-inf")

    def start(self) -> None:
        self.proc = psutil.Process(os.getpid())
        self.proc.cpu_percent()
        self._host = socket.gethostname()
        # Not an Every: the lag is how late a plain sleep wakes, so it sleeps unscheduled.
        self._lag_greenlet = gevent.spawn(self._lag_loop)
        self._sampler = Every(self.interval_s, self._sample_once)
        self._sampler.start()

    def stop(self) -> None:
        if self._lag_greenlet is not None:
            self._lag_greenlet.kill()
        if self._sampler is not None:
            self._sampler.stop()

    def _lag_loop(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(0.1)
            self._lags_ms.append(max(0.0, (time.perf_counter() - before - 0.1) * 1000))

    def _sample_once(self) -> None:
        cpu = self.proc.cpu_percent()
        lag = max(self._lags_ms, default=0.0)
        self._lags_ms.clear()
        self.cpu_max_pct, self.lag_max_ms = max(self.cpu_max_pct, cpu), max(self.lag_max_ms,
                                                                             lag)
        self._streak = self._streak + 1 if (cpu >= SATURATED_CPU_PCT or
                                            lag >= SATURATED_LAG_MS) else 0
        if self._streak >= SATURATED_FOR_S:
            self.saturated_seconds += 1
        memory = self.proc.memory_info()
        try:
            fds = self.proc.num_fds()
        except psutil.Error:
            fds = -1
        now = time.time()
        pss: int | None = None
        anon: int | None = None
        if now - self._pss_at >= PSS_INTERVAL_S:
            self._pss_at = now
            # Off the loop, as the target's PSS (harness/monitor/processes.py): it walks
            # page tables.
            pss, anon = gevent.get_hub().threadpool.apply(smaps_totals, (self.proc.pid,))
            # Both are counters the allocators keep: microseconds, so on the loop.
            self.ctx.sink.add(MetricRow(now, "harness", "python_allocated_blocks", "",
                                        float(sys.getallocatedblocks())))
            self.ctx.sink.add(MetricRow(now, "harness", "arrow_allocated_bytes", "",
                                        float(pa.total_allocated_bytes())))
        self.ctx.sink.add(ResourceRow(now, self._host, "harness", self.proc.pid, cpu,
                                      memory.rss, self.proc.memory_percent(), 0, 0, fds, 0,
                                      pss, anon))
        self.ctx.event("generator_loop_lag_ms", value=lag, detail=self.ctx.worker)

    def summary(self) -> dict[str, Any]:
        return {"cpu_max_pct": round(self.cpu_max_pct, 1),
                "loop_lag_max_ms": round(self.lag_max_ms, 1),
                "saturated_seconds": self.saturated_seconds,
                "late_sends": self.ctx.late_sends,
                "saturated": self.saturated_seconds > 0}
