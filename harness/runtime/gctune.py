"""Garbage-collector settings for a load generator. Every sample is a new tuple, and with the
default thresholds CPython's cyclic collector runs constantly and walks the whole heap (thousands
of greenlets and sockets) — measured in bench/ws_clients.py as the largest per-event cost.

The price of rare collections: with these thresholds a full collection comes only after ~10^8
net allocations, hours apart, while every viewer that disconnects leaves its greenlet, socket
and buffers in reference cycles. A soak's connect/disconnect cycles then grow the heap until
then, so the run collects fully on a clock instead (`collect_cycles`, from
harness.runtime.allocator)."""

from __future__ import annotations

import gc
import time

GEN0_THRESHOLD = 50_000
THRESHOLDS = (GEN0_THRESHOLD, 20, 100)


def tune_gc() -> None:
    """Collect rarely, and move what exists at start-up out of the collector's sight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def collect_cycles() -> tuple[int, float]:
    """A full collection now: (unreachable objects found, milliseconds it took). Objects
    frozen at start-up are not walked."""
    started = time.perf_counter()
    found = gc.collect()
    return found, (time.perf_counter() - started) * 1000
