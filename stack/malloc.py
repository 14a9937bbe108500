"""glibc malloc controls shared by the load generator and the reference service: both are
long-running Python processes whose resident memory should follow what they hold. glibc keeps
freed pages (in one arena per thread that ever allocated, and in holes below each heap's top);
over a soak that reads as growth although nothing is held."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

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


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas (call before threads start). True when applied."""
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1


def trim() -> bool:
    """Hand every arena's free pages back to the OS. True when glibc released something."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1
