"""Keeps the generator's resident memory close to what it really holds. Over hours, glibc's
malloc keeps pages that Python and Arrow have freed (in one arena per thread that ever
allocated, and in holes below the top of each heap), and Arrow's mimalloc pool keeps freed
segments; RSS then creeps while the Python heap stays flat (docs/performance.md, traced
soak). Capping the arenas and trimming on a clock hands those pages back, so the harness's
own memory slope measures leaks, not allocator retention."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

import pyarrow as pa

from harness.periodic import Every

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 60.0
ARENA_LIMIT = 2
_M_ARENA_MAX = -8  # from glibc's malloc.h


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


def limit_arenas(arenas: int = ARENA_LIMIT) -> bool:
    """Cap glibc's malloc arenas (call before threads start). True when applied."""
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1


def release_free_memory() -> None:
    """Return freed pages to the OS: Arrow's pool first (mimalloc here, which returns its
    own freed segments; the system pool's go back to malloc), then every malloc arena."""
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def trimmer(interval_s: float = TRIM_INTERVAL_S) -> Every:
    """A not-yet-started clock that releases free memory every `interval_s`."""
    return Every(interval_s, release_free_memory)
