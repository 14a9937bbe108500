"""Keeps the generator's resident memory close to what it really holds. Over hours, glibc's
malloc keeps pages that Python and Arrow have freed (in one arena per thread that ever
allocated, and in holes below the top of each heap), and Arrow's mimalloc pool keeps freed
segments; RSS then creeps while the Python heap stays flat (docs/performance.md, traced
soak). Capping the arenas and trimming on a clock hands those pages back, so the harness's
own memory slope measures leaks, not allocator retention. The same clock runs the full garbage
collection that the generator's tuned thresholds (harness.gctune) would otherwise put hours
apart: memory in dead reference cycles is only handed back once it is collected."""

from __future__ import annotations

import logging

import pyarrow as pa

from harness.gctune import collect_cycles
from harness.periodic import Every
from stack import malloc

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 60.0
ARENA_LIMIT = 2


def limit_arenas(arenas: int = ARENA_LIMIT) -> bool:
    """Cap glibc's malloc arenas (call before threads start). True when applied."""
    return malloc.limit_arenas(arenas)


def release_free_memory() -> None:
    """Return freed pages to the OS: Arrow's pool first (mimalloc here, which returns its
    own freed segments; the system pool's go back to malloc), then every malloc arena."""
    pa.default_memory_pool().release_unused()
    malloc.trim()


def tidy() -> None:
    """Collect dead reference cycles, then hand the memory they held back to the OS."""
    found, took_ms = collect_cycles()
    log.debug("full collection: %d unreachable objects in %.1f ms", found, took_ms)
    release_free_memory()


def trimmer(interval_s: float = TRIM_INTERVAL_S) -> Every:
    """A not-yet-started clock that tidies memory (`tidy`) every `interval_s`."""
    return Every(interval_s, tidy)
