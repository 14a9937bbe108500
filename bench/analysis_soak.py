"""Analysis at soak scale: a synthetic 4-hour, 250-viewer run (≥ 5 million samples plus
resources and events) analysed to verdict, charts and reports.

    /usr/bin/time -v .venv/bin/python bench/analysis_soak.py [--samples 5000000]

Prints the time of each stage; run it under /usr/bin/time -v for the peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.analyze import analyze
from records.recorder import atomic_write_json
from records.schema import TABLES

START = 1_800_000_000.0
HOURS = 4


def synthesise(folder: Path, n_samples: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    duration = HOURS * 3600.0
    kinds = np.array(["ws_event", "ws_rtt", "http", "http", "ws_event"])
    names = {"ws_event": "viewer_count_changed", "ws_rtt": "stream_info", "http": "list_active"}
    chunk = 1_000_000
    (folder / "samples").mkdir(parents=True)
    for part, offset in enumerate(range(0, n_samples, chunk), start=1):
        n = min(chunk, n_samples - offset)
        ts = np.sort(rng.uniform(START, START + duration, n))
        kind = kinds[rng.integers(0, len(kinds), n)]
        columns = {
            "ts": ts, "intended_ts": ts, "kind": kind,
            "name": np.vectorize(names.get)(kind),
            "latency_ms": rng.gamma(2.0, 2.5, n), "ok": rng.random(n) > 0.0005,
            "status": np.full(n, 200, dtype=np.int32), "error": [None] * n,
            "bytes": np.full(n, 180), "worker": ["local"] * n,
            "user": np.char.add("v", rng.integers(0, 250, n).astype(str)),
            "stream": np.char.add("s", rng.integers(0, 5, n).astype(str)),
        }
        table = pa.table(columns, schema=TABLES["samples"])
        pq.write_table(table, folder / "samples" / f"part-{part:06d}.parquet")
    seconds = np.arange(START, START + duration, 1.0)
    roles = ["harness", "api", "postgres", "redis", "nginx"]
    resources = {name: [] for name in TABLES["resources"].names}  # type: ignore[var-annotated]
    for index, role in enumerate(roles):
        n = len(seconds)
        resources["ts"].extend(seconds)
        resources["host"].extend(["bench"] * n)
        resources["role"].extend([role] * n)
        resources["pid"].extend([1000 + index] * n)
        resources["cpu_pct"].extend(rng.normal(10, 2, n))
        resources["rss_bytes"].extend((2e8 + rng.normal(0, 1e6, n)).astype(int))
        for column in ("mem_pct",):
            resources[column].extend(rng.normal(2, 0.1, n))
        for column in ("read_bytes", "write_bytes", "num_fds", "num_conns"):
            resources[column].extend([0] * n)
    (folder / "resources").mkdir()
    pq.write_table(pa.table(resources, schema=TABLES["resources"]),
                   folder / "resources" / "part-000001.parquet")
    events = {"ts": [START + 1.0] * 250 + [START + 2.0] * 250,
              "type": ["viewer_connected"] * 250 + ["stream_active_seen"] * 250,
              "stream": ["s0"] * 500, "user": [f"v{i}" for i in range(250)] * 2,
              "value": [0.0] * 500, "detail": [None] * 500}
    (folder / "events").mkdir()
    pq.write_table(pa.table(events, schema=TABLES["events"]),
                   folder / "events" / "part-000001.parquet")
    atomic_write_json(folder / "manifest.json", {
        "schema_version": 1, "run_id": "bench-soak", "status": "completed",
        "scenario": {"name": "bench-soak", "load": {"warmup": 60.0}, "thresholds": None},
        "planned": {"viewers": 250, "streams": 5, "duration_s": duration},
        "stages": [{"name": "hold", "start": START, "end": START + duration}],
        "phases": [{"name": "warmup", "start": START, "end": START + 60},
                   {"name": "steady", "start": START + 60, "end": START + duration - 60},
                   {"name": "cooldown", "start": START + duration - 60,
                    "end": START + duration}],
        "validity": {"saturated": False}, "target": {"api_base": "synthetic"}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nova-bench-analysis-"))
    try:
        started = time.perf_counter()
        # Synthesis in its own process: the peak memory printed below is the analysis's.
        maker = multiprocessing.Process(target=synthesise, args=(folder, args.samples))
        maker.start()
        maker.join()
        print(f"synthesised {args.samples:,} samples in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        analysis = analyze(folder)
        elapsed = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"analysed to verdict {analysis.verdict.status}, {len(analysis.files)} files, "
              f"in {elapsed:.1f} s, peak RSS {peak_mib:.0f} MiB")
        for result in analysis.verdict.results:
            print(f"  {result.status:<12} {result.id} n={result.n}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
