"""What Arrow's memory pool keeps resident while the Recorder writes part files, side by side
in one run, each pool in a fresh interpreter. A soak's generator memory (docs/soak.md) moved
with the resident pages of Arrow's mimalloc region (4.5-10 MB, the rest of the process flat
within ~0.5 MB); this compares the pools a run could use.

Each mode writes the four tables' parts on one native thread, as the Recorder does, with the
row counts of a 250-viewer run's 2-second flushes (and an occasional backlog ten times larger),
`--speedup` times faster than a run; the main thread hands freed memory back on the run's
clock (`harness.runtime.allocator.release_free_memory`, scaled by the same factor) and samples the
process's anonymous resident memory every 0.25 s.

    .venv/bin/python bench/arrow_pool_memory.py [--seconds 60] [--speedup 40]

Prints per mode: anonymous memory after warm-up (median, p95 and max minus the median,
in MB) and the slope over the measured span.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("mimalloc", "jemalloc", "system")
# Rows per 2-second flush of a 250-viewer soak (samples, events, resources, metrics).
ROWS_PER_FLUSH = {"samples": 300, "events": 80, "resources": 20, "metrics": 60}
RELEASE_EVERY_S = 60.0


def anonymous_bytes() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
    return 0


def fake_row(table: str, i: int, now: float) -> Sequence[Any]:
    """A row shaped like the Recorder's for `table` (records/schema.py)."""
    if table == "samples":
        return (now, now, "ws_event", "viewer_count_changed", 1.5 + i % 7, True, None, None,
                150, "local", f"viewer-{i % 250}", f"stream-{i % 5}")
    if table == "events":
        return (now, "viewer_count_observed", f"stream-{i % 5}", f"viewer-{i % 250}",
                float(i % 300), None)
    if table == "resources":
        return (now, "host", "api", 1000 + i, 12.5, 80_000_000 + i, 0.4, 0, 0, 40, 12,
                70_000_000, 60_000_000)
    return (now, "api", "nova_ws_connections", f"stream=stream-{i % 5}", float(i))


def write_forever(folder: Path, speedup: float, stop: threading.Event) -> None:
    from records.recorder import TableWriter
    from records.schema import TABLES

    writers = {name: TableWriter(folder / name, TABLES[name]) for name in ROWS_PER_FLUSH}
    rng = random.Random(7)
    while not stop.is_set():
        backlog = 10 if rng.random() < 0.02 else 1
        for name, writer in writers.items():
            now = time.time()
            count = int(ROWS_PER_FLUSH[name] * backlog * rng.uniform(0.5, 1.5))
            for i in range(count):
                writer.add(fake_row(name, i, now))
            writer.write_part(writer.take(), writer.next_part)
            writer.next_part += 1
        time.sleep(2.0 / speedup)


def one_mode(seconds: float, speedup: float) -> dict[str, Any]:
    """Runs in the mode's own interpreter (the pool is chosen by its environment)."""
    import pyarrow as pa

    from harness.runtime.allocator import limit_arenas, release_free_memory

    limit_arenas()
    stop = threading.Event()
    folder = Path(tempfile.mkdtemp(prefix="nova-arrow-pool-"))
    writer = threading.Thread(target=write_forever, args=(folder, speedup, stop))
    writer.start()
    started = time.monotonic()
    next_release = started
    warmup_s = seconds / 4
    samples: list[tuple[float, int]] = []
    while (elapsed := time.monotonic() - started) < seconds:
        if time.monotonic() >= next_release:
            release_free_memory()
            next_release += RELEASE_EVERY_S / speedup
        if elapsed >= warmup_s:
            samples.append((elapsed, anonymous_bytes()))
        time.sleep(0.25)
    stop.set()
    writer.join()
    values = sorted(value for _, value in samples)
    median = statistics.median(values)
    first = statistics.median(v for t, v in samples[: len(samples) // 4])
    last = statistics.median(v for t, v in samples[-len(samples) // 4:])
    return {"backend": pa.default_memory_pool().backend_name,
            "median_mb": median / 1e6,
            "p95_above_mb": (values[int(0.95 * (len(values) - 1))] - median) / 1e6,
            "max_above_mb": (values[-1] - median) / 1e6,
            "last_minus_first_mb": (last - first) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--speedup", type=float, default=40.0,
                        help="flushes this many times faster than a run's 2 s")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(one_mode(args.seconds, args.speedup)))
        return
    print(f"{'pool':<9} {'median MB':>9} {'p95-med':>8} {'max-med':>8} {'last-first':>10}",
          flush=True)
    for mode in MODES:
        env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": mode}
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--seconds",
                              str(args.seconds), "--speedup", str(args.speedup)],
                             capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        try:
            r = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            print(f"{mode:<9} failed: {out.stderr[-300:]}")
            continue
        print(f"{r['backend']:<9} {r['median_mb']:>9.1f} {r['p95_above_mb']:>8.2f} "
              f"{r['max_above_mb']:>8.2f} {r['last_minus_first_mb']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
