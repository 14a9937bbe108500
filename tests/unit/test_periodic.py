"""Every: a fixed schedule, overrun ticks skipped rather than run back to back, stop ends it."""

from __future__ import annotations

import itertools
import time

import gevent

from harness.runtime.periodic import Every

INTERVAL_S = 0.05


def test_a_slow_call_neither_shifts_the_schedule_nor_is_caught_up() -> None:
    calls: list[float] = []

    def action() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            gevent.sleep(2.4 * INTERVAL_S)  # overruns two ticks

    every = Every(INTERVAL_S, action, first_after_s=0.0)
    started = time.monotonic()
    every.start()
    gevent.sleep(12 * INTERVAL_S)
    every.stop()
    assert not every.running
    count = len(calls)
    gevent.sleep(3 * INTERVAL_S)
    assert len(calls) == count  # stopped means stopped
    assert calls[0] - started < INTERVAL_S / 2  # first_after_s=0: at once
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) > INTERVAL_S / 2  # no burst catching up the skipped ticks
    # After the overrun the calls are back on the original grid.
    phases = [((t - calls[0]) / INTERVAL_S) % 1 for t in calls[3:]]
    assert all(min(p, 1 - p) < 0.4 for p in phases), phases
    assert 7 <= count <= 11
