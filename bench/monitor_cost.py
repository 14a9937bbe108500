"""What sampling the target costs: ResourceSampler over 20 processes (4 roles of 5), once a
second, as CPU share of one core.

    .venv/bin/python bench/monitor_cost.py [--processes 20] [--samples 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from harness.monitor import ResourceSampler


class NullSink:
    rows = 0

    def add(self, table: str, row: Sequence[Any]) -> None:
        self.rows += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                for _ in range(args.processes)]
    roles = {f"role{r}": [c.pid for c in children[r::4]] for r in range(4)}
    try:
        sampler = ResourceSampler(NullSink(), lambda: roles)
        sampler.sample_once()
        started, clock = time.process_time(), time.time()
        for second in range(args.samples):
            # One simulated second apart, so the process-table scan runs as often as in a run.
            sampler.sample_once(now=clock + second + 1)
        per_sample_s = (time.process_time() - started) / args.samples
        print(f"{args.processes} processes: {per_sample_s * 1000:.2f} ms CPU per sample "
              f"→ {per_sample_s * 100:.2f} % of one core at one sample per second")
    finally:
        for child in children:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
