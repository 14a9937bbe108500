"""glibc malloc controls for the reference service, a long-running Python process whose
resident memory should follow what it holds (the generator has its own in
harness/runtime/allocator.py: the stack shares no code with the harness). glibc keeps
freed pages (in one arena per thread that ever allocated, and in holes below each heap's top);
over a soak that reads as growth although nothing is held."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, or None on a C library without malloc_trim (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name)
        library.malloc_trim  # noqa: B018 - probes that it exists
    except (OSError, AttributeError):
        log.info("C library %s has no malloc_trim: freed memory is not trimmed", name)
        return None
    return library


def trim() -> bool:
    """Hand every arena's free pages back to the OS. True when glibc released something."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1
