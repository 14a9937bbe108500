"""What serving `--metrics-port` costs the load: CPU per row on the path every row takes
(LiveStats → Recorder) without and with the `nova_harness_*` series, alternated in one run
(this machine is noisy), and the time of one scrape.

    .venv/bin/python bench/metrics_cost.py [--rows 200000] [--rounds 5]

The row mix is a viewer run's: socket events (most), round trips, API requests, connects.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

from harness.run.livestats import LiveStats
from harness.telemetry.exporter import HarnessMetrics, RunFacts
from records.recorder import Recorder
from records.schema import HTTP, WS_CONNECT, WS_EVENT, WS_RTT, EventRow, Row, SampleRow

STREAMS = [f"stream-{i}" for i in range(5)]
OPERATIONS = ("get", "list_active", "create", "metrics", "health")


def rows(count: int) -> list[Row]:
    """`count` rows in a viewer run's proportions (events 80 %, round trips 10 %, API 8 %)."""
    made: list[Row] = []
    for i in range(count):
        stream, ts = STREAMS[i % len(STREAMS)], 1_800_000_000.0 + i / 1000
        if i % 50 == 0:
            made.append(EventRow(ts, "viewer_connected", stream, f"v{i}", 0.0, None))
        elif i % 50 == 1:
            made.append(SampleRow(ts, ts, WS_CONNECT, "connect", 3.0, True, 101, None, 0,
                                  "local", f"v{i}", stream))
        elif i % 10 == 2:
            made.append(SampleRow(ts, ts, WS_RTT, "stream_info", 2.5, True, None, None, 0,
                                  "local", f"v{i}", stream))
        elif i % 12 == 3:
            made.append(SampleRow(ts, ts, HTTP, OPERATIONS[i % 5], 8.0, True, 200, None, 120,
                                  "local", "api", None))
        else:
            made.append(SampleRow(ts, ts, WS_EVENT, "viewer_count_changed", 12.0 + i % 40,
                                  True, None, None, 90, "local", f"v{i}", stream))
    return made


def cpu_per_row_us(batch: list[Row], with_metrics: bool) -> float:
    """Process CPU per row through LiveStats into a real Recorder, in microseconds."""
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(Path(folder))
        metrics = HarnessMetrics("bench", "bench") if with_metrics else None
        live = LiveStats(recorder, [metrics.observe] if metrics else [])
        started = time.process_time()
        for row in batch:
            live.add(row)
        spent = time.process_time() - started
        recorder.close()
    return spent / len(batch) * 1e6


def scrape_ms(batch: list[Row]) -> tuple[float, int]:
    """The time of one scrape of a run's series after `batch`, and the exposition's size."""
    facts = RunFacts(stage="hold", time_left_s=60.0, planned_viewers={s: 50 for s in STREAMS},
                     broadcasters={"publishing": 5})
    metrics = HarnessMetrics("bench", "bench", facts=lambda: facts)
    for row in batch:
        metrics.observe(row)
    started = time.perf_counter()
    for _ in range(20):
        body = generate_latest(metrics.registry)
    return (time.perf_counter() - started) / 20 * 1000, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    batch = rows(args.rows)
    without, with_ = [], []
    for _ in range(args.rounds):  # alternated: drift in the machine hits both alike
        without.append(cpu_per_row_us(batch, False))
        with_.append(cpu_per_row_us(batch, True))
    base, served = statistics.median(without), statistics.median(with_)
    print(f"rows per round: {args.rows}, rounds: {args.rounds}")
    print(f"CPU per row without metrics: {base:.2f} us (rounds: "
          f"{', '.join(f'{v:.2f}' for v in without)})")
    print(f"CPU per row with metrics:    {served:.2f} us (rounds: "
          f"{', '.join(f'{v:.2f}' for v in with_)})")
    print(f"difference: {served - base:+.2f} us per row ({(served / base - 1) * 100:+.1f} %)")
    took_ms, size = scrape_ms(batch)
    print(f"one scrape: {took_ms:.2f} ms, {size} bytes")


if __name__ == "__main__":
    main()
