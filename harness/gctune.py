"""Garbage-collector settings for a load generator. Every sample is a new tuple, and with the
default thresholds CPython's cyclic collector runs constantly and walks the whole heap (thousands
of greenlets and sockets) — measured in bench/ws_clients.py as the largest per-event cost."""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect rarely, and move what exists at start-up out of the collector's sight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, 20, 100)
