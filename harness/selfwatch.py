"""The generator watches itself: CPU of this process, event-loop lag (how late a 100 ms sleep
wakes), RSS. A generator that is saturated marks the run invalid instead of blaming the target."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import psutil

from harness.users.context import UserContext

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
    _greenlets: list[Any] = field(default_factory=list)

    def start(self) -> None:
        self.proc = psutil.Process(os.getpid())
        self.proc.cpu_percent()
        self._greenlets = [gevent.spawn(self._lag_loop), gevent.spawn(self._sample_loop)]

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)

    def _lag_loop(self) -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(0.1)
            self._lags_ms.append(max(0.0, (time.perf_counter() - before - 0.1) * 1000))

    def _sample_loop(self) -> None:
        host = socket.gethostname()
        while True:
            gevent.sleep(self.interval_s)
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
            self.ctx.sink.add("resources", (time.time(), host, "harness", self.proc.pid, cpu,
                                            memory.rss, self.proc.memory_percent(), 0, 0, fds, 0,
                                            None))
            self.ctx.event("generator_loop_lag_ms", value=lag, detail=self.ctx.worker)

    def summary(self) -> dict[str, Any]:
        return {"cpu_max_pct": round(self.cpu_max_pct, 1),
                "loop_lag_max_ms": round(self.lag_max_ms, 1),
                "saturated_seconds": self.saturated_seconds,
                "late_sends": self.ctx.late_sends,
                "saturated": self.saturated_seconds > 0}
