"""Keeps the generator's resident memory close to what it really holds. Over hours, glibc's
malloc keeps pages that Python and Arrow have freed (in one arena per thread that ever
allocated, and in holes below the top of each heap), and Arrow's mimalloc pool keeps freed
segments; RSS then creeps while the Python heap stays flat (docs/performance.md, traced
soak). Capping the arenas and trimming on a clock hands those pages back, so the harness's
own memory slope measures leaks, not allocator retention. The same clock runs the full garbage
collection that the generator's tuned thresholds (harness.runtime.gctune) would otherwise put hours
apart: memory in dead reference cycles is only handed back once it is collected.

Arrow's default pool here is mimalloc, whose freed pages stay with the thread that allocated
them (the Recorder's writer thread) however often the loop asks the pool to release them: in
a 50-minute soak its resident pages swung between 4.5 and 10 MB while the rest of the process
stayed flat within ~0.5 MB: the swing was the generator's memory "trend" up to minute 34
(docs/performance.md). A generator therefore runs Arrow on GENERATOR_ARROW_POOL, chosen by
`choose_arrow_pool` before pyarrow is imported (Arrow reads its pool once, at import)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

from harness.runtime.gctune import collect_cycles
from harness.runtime.periodic import Every

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 60.0
ARENA_LIMIT = 2
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
GENERATOR_ARROW_POOL = "jemalloc"
_M_ARENA_MAX = -8  # from glibc's malloc.h


# The reference service has its own copy of these glibc calls (stack/malloc.py): the stack
# is a stand-in target and shares no code with the harness that loads it.
@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, or None on a C library without malloc_trim/mallopt (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name)
        library.malloc_trim, library.mallopt  # noqa: B018 - probes that both exist
    except (OSError, AttributeError):
        log.info("C library %s has no malloc_trim: freed memory is not trimmed", name)
        return None
    return library


def choose_arrow_pool(backend: str = GENERATOR_ARROW_POOL) -> None:
    """Make `backend` Arrow's default pool in this process and its children, unless the user
    chose one in the environment. Only effective before pyarrow is first imported."""
    os.environ.setdefault(ARROW_POOL_ENV, backend)


def limit_arenas(arenas: int = ARENA_LIMIT) -> bool:
    """Cap glibc's malloc arenas (call before threads start). True when applied."""
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1


def release_free_memory() -> None:
    """Return freed pages to the OS: Arrow's pool first (jemalloc in a generator purges
    its arenas; the system pool's pages go back with malloc's), then every malloc arena."""
    import pyarrow as pa  # here, not at import: choose_arrow_pool must run before pyarrow

    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def tidy() -> None:
    """Collect dead reference cycles, then hand the memory they held back to the OS."""
    found, took_ms = collect_cycles()
    log.debug("full collection: %d unreachable objects in %.1f ms", found, took_ms)
    release_free_memory()


def trimmer(interval_s: float = TRIM_INTERVAL_S) -> Every:
    """A not-yet-started clock that tidies memory (`tidy`) every `interval_s`."""
    return Every(interval_s, tidy)
