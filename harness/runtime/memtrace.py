"""Opt-in diagnosis of the generator's own memory growth (docs/soak.md): with
`NOVA_TRACE_MEMORY=SECONDS` set, every SECONDS the run writes to `logs/memory-trace.log` its
RSS, the Python heap tracemalloc sees (and tracemalloc's own overhead), Arrow's allocated bytes,
and the source lines whose allocations grew most since the first snapshot. tracemalloc slows
allocation-heavy code and each snapshot pauses the event loop, so a traced run's latencies are
not to be judged; it answers "what grows", not "how fast". RSS growing while the traced heap and
Arrow stay flat points at the allocator (fragmentation, arenas)."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import psutil
import pyarrow as pa

from harness.runtime.periodic import Every
from records.errors import InputError

ENV_VAR = "NOVA_TRACE_MEMORY"
TOP_LINES = 15
FRAMES = 8


def interval_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> float | None:
    """Seconds between snapshots, or None when tracing is off."""
    raw = environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        every_s = float(raw)
    except ValueError:
        every_s = -1.0
    if every_s < 5:
        raise InputError([f"{ENV_VAR}={raw!r}: expected seconds between snapshots, >= 5"],
                         hint=f"{ENV_VAR}=60, or unset it")
    return every_s


class MemoryTrace:
    """Periodic tracemalloc snapshots compared with the first one."""

    def __init__(self, log_path: Path, every_s: float) -> None:
        self.log_path, self.every_s = log_path, every_s
        self.first: tracemalloc.Snapshot | None = None
        self.every = Every(every_s, self.write_once)
        self.process = psutil.Process()

    def start(self) -> None:
        tracemalloc.start(FRAMES)
        self.first = self._snapshot()
        self._write(f"tracing every {self.every_s:g} s; baseline RSS "
                    f"{self.process.memory_info().rss / 1e6:.1f} MB\n")
        self.every.start()

    def stop(self) -> None:
        if self.every.running:
            self.every.stop()
            self.write_once()
        tracemalloc.stop()

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])

    def write_once(self) -> None:
        """One entry: RSS, traced heap, Arrow, and the lines that grew most since the start."""
        assert self.first is not None
        started = time.perf_counter()
        snapshot = self._snapshot()
        growth = snapshot.compare_to(self.first, "lineno")[:TOP_LINES]
        traced_bytes, peak_bytes = tracemalloc.get_traced_memory()
        pause_ms = (time.perf_counter() - started) * 1000
        lines = [f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} RSS "
                 f"{self.process.memory_info().rss / 1e6:.1f} MB, traced "
                 f"{traced_bytes / 1e6:.1f} MB (peak {peak_bytes / 1e6:.1f}; tracing itself "
                 f"{tracemalloc.get_tracemalloc_memory() / 1e6:.1f} MB), Arrow "
                 f"{pa.total_allocated_bytes() / 1e6:.1f} MB "
                 f"({pa.default_memory_pool().backend_name}), snapshot {pause_ms:.0f} ms"]
        lines += [f"  {stat.size_diff / 1e3:+10.1f} kB {stat.count_diff:+8d} blocks  "
                  f"{stat.traceback}" for stat in growth]
        self._write("\n".join(lines) + "\n")

    def _write(self, text: str) -> None:
        with self.log_path.open("a") as out:
            out.write(text)
