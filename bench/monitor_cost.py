"""What sampling the target costs: ResourceSampler over 20 processes (4 roles of 5), once a
second, as CPU share of one core — roles given by pid (the local stack's state file) and, side
by side, found by command-line selectors (`monitors.processes`, re-resolved every 5 s). PSS
(every PSS_INTERVAL_S) walks every resident page, so `--resident-mb` makes each process hold
that much (PostgreSQL backends map the stack's 64 MB of shared buffers).

    .venv/bin/python bench/monitor_cost.py [--processes 20] [--samples 200] [--resident-mb 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

from harness.config.monitors import ProcessSelector
from harness.monitor.processes import (
    PSS_INTERVAL_S,
    TREE_REFRESH_S,
    ProcessSelection,
    ResourceSampler,
)
from records.schema import Row


class NullSink:
    rows = 0

    def add(self, row: Row) -> None:
        self.rows += 1


_resolved: dict[str, list[int]] = {}


def _selected(selection: ProcessSelection, second: int) -> dict[str, list[int]]:
    """As ProcessSelection.__call__, on the simulated clock: resolved every TREE_REFRESH_S."""
    if second % int(TREE_REFRESH_S) == 0 or not _resolved:
        _resolved.clear()
        _resolved.update(selection.resolve())
    return _resolved


def _measure(roles: Callable[[int], dict[str, list[int]]], samples: int,
             pss_interval_s: float | None) -> float:
    """CPU seconds per sample, one simulated second apart (so the process-table scans and
    PSS reads run as often as in a run)."""
    second = 0
    sampler = ResourceSampler(NullSink(), lambda: roles(second), pss_interval_s=pss_interval_s)
    sampler.sample_once()
    started, clock = time.process_time(), time.time()
    for second in range(samples):
        sampler.sample_once(now=clock + second + 1)
    return (time.process_time() - started) / samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--resident-mb", type=int, default=0)
    args = parser.parse_args()
    hold = f"held = b'x' * {args.resident_mb * 2**20}; " if args.resident_mb else ""
    children = [subprocess.Popen([sys.executable, "-c",
                                  f"import time; {hold}time.sleep({600 + i % 4})"])
                for i in range(args.processes)]
    time.sleep(1 + args.resident_mb * args.processes / 2000)  # let them touch their pages
    by_pid = {f"role{r}": [c.pid for c in children[r::4]] for r in range(4)}
    selection = ProcessSelection([ProcessSelector(role=f"role{r}", cmdline=f"sleep\\({600 + r}\\)")
                                  for r in range(4)])
    try:
        for label, roles, pss_s in (
                ("by pid, no PSS", lambda _second: by_pid, None),
                (f"by pid, PSS every {PSS_INTERVAL_S:.0f} s", lambda _second: by_pid,
                 PSS_INTERVAL_S),
                (f"by cmdline selector, PSS every {PSS_INTERVAL_S:.0f} s",
                 lambda second: _selected(selection, second),
                 PSS_INTERVAL_S)):
            per_sample_s = _measure(roles, args.samples, pss_s)
            print(f"{args.processes} processes (+{args.resident_mb} MB resident each) {label}: "
                  f"{per_sample_s * 1000:.2f} ms CPU per "
                  f"sample → {per_sample_s * 100:.2f} % of one core at one sample per second")
    finally:
        for child in children:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
