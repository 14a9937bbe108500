"""One process against a master with local workers, side by side in one run: the same
scenario on the same local stack, with `--workers 0` and `--workers 2` in turn (alternating,
`--rounds` times), and what each run's results say about the generator and the measured
latencies. Also each worker's clock offset as the master measured it.

    .venv/bin/python bench/distributed_split.py [--viewers-per-stream 100] [--streams 4]
        [--duration 60s] [--rounds 2]

The stack runs on this machine too: on a 2-core VM the figures show the harness's cost of
distribution (row shipping, the master's merge), not a gain in capacity.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.load import read_table
from stack import local
from stack.roles import StackOptions

ROOT = Path(__file__).resolve().parents[1]


def one_run(stack_dir: Path, results: Path, args: argparse.Namespace,
            workers: int) -> dict[str, Any]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "run", str(ROOT / "scenarios/smoke.yaml"),
                    "--run-dir", str(stack_dir), "--results", str(results), "--quiet",
                    "--duration", args.duration, "--streams", str(args.streams),
                    "--viewers-per-stream", str(args.viewers_per_stream), "--api-rate", "10",
                    "--workers", str(workers)], capture_output=True, text=True, timeout=900)
    wall_s = time.monotonic() - started
    folder = max(results.iterdir(), key=lambda p: p.stat().st_mtime)
    samples, resources = read_table(folder, "samples"), read_table(folder, "resources")
    manifest = json.loads((folder / "manifest.json").read_text())
    # Per process (master, each worker): each samples its own CPU every second.
    per_process = resources[resources.role == "harness"].groupby("pid").cpu_pct
    push = samples[(samples.kind == "ws_event") & samples.ok].latency_ms.to_numpy()
    rtt = samples[(samples.kind == "ws_rtt") & samples.ok].latency_ms.to_numpy()
    workers_seen = (manifest.get("distributed") or {}).get("workers", [])
    return {
        "workers": workers, "wall_s": round(wall_s, 1), "rows": len(samples),
        "cpu_mean_pct_by_process": sorted(round(float(v), 1) for v in per_process.mean()),
        "cpu_mean_pct_total": round(float(per_process.mean().sum()), 1),
        "cpu_max_pct_by_process": sorted(round(float(v), 1) for v in per_process.max()),
        "push_p95_ms": round(float(np.percentile(push, 95)), 2) if len(push) else None,
        "rtt_p99_ms": round(float(np.percentile(rtt, 99)), 2) if len(rtt) else None,
        "saturated": manifest["validity"]["saturated"],
        "clock_offsets_ms": [(w["clock_offset_ms"], w["clock_bound_ms"]) for w in workers_seen],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers-per-stream", type=int, default=100)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # Under /var/tmp and world-readable: the stack's PostgreSQL runs as the postgres user.
    with tempfile.TemporaryDirectory(prefix="nova-bench-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o755)
        stack_dir, results = Path(tmp) / "stack", Path(tmp) / "results"
        results.mkdir()
        local.up(StackOptions(run_dir=stack_dir, instances=2))
        try:
            rows = [one_run(stack_dir, results, args, workers)
                    for _ in range(args.rounds) for workers in (0, 2)]
        finally:
            local.down(stack_dir)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
