"""How long the target's sampling stalls the generator's event loop: the local stack's
ResourceSampler ticking once a second (PSS every 5 s) on the gevent loop, against the same
sampler reading /proc in a thread (what a run does), in alternating blocks of one process, while
a probe measures how late a 100 ms sleep wakes (the harness's loop-lag figure).

Needs a running local stack (`nova-harness stack up`, or during a soak); run it under load to
see the stalls a run sees.

    .venv/bin/python bench/monitor_loop_lag.py [--stack-dir /var/tmp/nova-stack-0]
        [--block-s 60] [--rounds 3]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

from harness.monitor.processes import ResourceSampler, local_stack_roles  # noqa: E402
from harness.runtime.periodic import Every  # noqa: E402
from records.schema import Row  # noqa: E402
from stack.errors import StackNotRunning  # noqa: E402
from stack.local import default_run_dir  # noqa: E402
from stack.state import read_state  # noqa: E402


class NullSink:
    rows = 0

    def add(self, row: Row) -> None:
        self.rows += 1


def lags_ms(block_s: float) -> list[float]:
    """How late each 100 ms sleep woke, for `block_s`."""
    found, end = [], time.monotonic() + block_s
    while time.monotonic() < end:
        before = time.perf_counter()
        gevent.sleep(0.1)
        found.append(max(0.0, (time.perf_counter() - before - 0.1) * 1000))
    return found


def block(sampler: ResourceSampler, threaded: bool, block_s: float) -> list[float]:
    every = Every(1.0, sampler._tick if threaded else sampler.sample_once)
    every.start()
    try:
        return lags_ms(block_s)
    finally:
        every.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack-dir", type=Path, default=default_run_dir())
    parser.add_argument("--block-s", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        roles = local_stack_roles(read_state(args.stack_dir).roles)
    except StackNotRunning as exc:
        sys.exit(f"{exc}")
    sampler = ResourceSampler(NullSink(), lambda: roles)
    found: dict[str, list[float]] = {"on the loop": [], "in a thread": []}
    for number in range(args.rounds):
        for name, threaded in (("on the loop", False), ("in a thread", True)):
            found[name] += block(sampler, threaded, args.block_s)
            print(f"round {number + 1}: {name} done", file=sys.stderr)
    print(f"{'sampler':<12} {'wakes':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'> 20 ms':>8}")
    for name, values in found.items():
        lag = np.asarray(values)
        print(f"{name:<12} {len(lag):>6} {np.percentile(lag, 50):>7.1f} "
              f"{np.percentile(lag, 95):>7.1f} {np.percentile(lag, 99):>7.1f} {lag.max():>7.1f} "
              f"{int((lag > 20).sum()):>8}")


if __name__ == "__main__":
    main()
