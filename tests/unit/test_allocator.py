"""The generator's allocator trimming, on this process's real glibc malloc."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import psutil
import pytest

from harness.runtime import allocator, gctune

CHUNK_BYTES = 64 * 1024  # under glibc's mmap threshold: served from the heap, not mmap
CHUNKS = 2_000  # ~128 MB


@pytest.fixture
def libc() -> ctypes.CDLL:
    library = ctypes.CDLL(ctypes.util.find_library("c"))
    library.malloc.restype = ctypes.c_void_p
    library.malloc.argtypes = [ctypes.c_size_t]
    library.free.argtypes = [ctypes.c_void_p]
    return library


def test_freed_heap_pages_return_to_the_os_only_when_trimmed(libc: ctypes.CDLL) -> None:
    process = psutil.Process()
    allocator.release_free_memory()  # its first call imports pyarrow: not in the window below
    chunks = [libc.malloc(CHUNK_BYTES) for _ in range(CHUNKS)]
    assert all(chunks)
    for chunk in chunks:
        ctypes.memset(chunk, 1, CHUNK_BYTES)  # make every page resident
    pinned = libc.malloc(CHUNK_BYTES)  # above the freed ones: the heap's top cannot shrink
    filled_rss = process.memory_info().rss
    for chunk in chunks:
        libc.free(chunk)
    freed_rss = process.memory_info().rss
    allocator.release_free_memory()
    trimmed_rss = process.memory_info().rss
    libc.free(pinned)
    held_mb = (freed_rss - trimmed_rss) / 1e6
    assert freed_rss > filled_rss - 32e6, "free() alone gave most pages back: nothing to test"
    assert held_mb > 100, f"trimming returned only {held_mb:.0f} MB of ~131 MB freed"


def test_arena_limit_is_accepted_by_glibc() -> None:
    assert allocator.limit_arenas(8) is True


class _Node:
    """One link of a reference cycle, like a closed viewer and its greenlet."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def test_tidy_frees_dead_cycles_the_tuned_collector_would_keep() -> None:
    thresholds = gc.get_threshold()
    gc.set_threshold(*gctune.THRESHOLDS)
    try:
        first, second = _Node(), _Node()
        first.other, second.other = second, first
        watched = weakref.ref(first)
        del first, second
        for _ in range(1000):  # allocations far below the tuned gen-0 threshold
            _Node()
        assert watched() is not None, "the collector ran by itself: nothing to test"
        allocator.tidy()
        assert watched() is None
    finally:
        gc.set_threshold(*thresholds)


def _pool_after_cli(command: list[str], environ: dict[str, str]) -> tuple[int, str]:
    """Exit code of `nova-harness COMMAND` run in a fresh interpreter, then Arrow's pool there."""
    code = ("from harness.cli.main import main\n"
            f"rc = main({command!r})\n"
            "import pyarrow as pa\n"
            "print(rc, pa.default_memory_pool().backend_name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, check=True, timeout=60)
    rc, backend = done.stdout.split()[-2:]
    return int(rc), backend


def test_load_commands_run_arrow_on_the_generator_pool_unless_the_user_chose_one(
        tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    clean = {k: v for k, v in os.environ.items() if k != allocator.ARROW_POOL_ENV}
    assert _pool_after_cli(["run", missing], clean) == (2, allocator.GENERATOR_ARROW_POOL)
    assert _pool_after_cli(["run", missing], {**clean, allocator.ARROW_POOL_ENV: "system"}) \
        == (2, "system")
    # Analysis keeps Arrow's own default.
    assert _pool_after_cli(["validate", missing], clean)[1] != allocator.GENERATOR_ARROW_POOL
