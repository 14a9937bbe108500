"""What one `allocator.release_free_memory()` costs the event loop, on a heap shaped like a
long-running generator's: many live objects with every other one freed (fragmented), plus
Arrow arrays built and dropped.

    python bench/trim_cost.py [--live-mb 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psutil
import pyarrow as pa

from harness import allocator


def fragmented_heap(live_mb: int) -> list[bytes]:
    """twice live_mb of 1..4 kB blocks (2.5 kB on average), then every other one freed."""
    blocks = [bytes(1024 + (i % 4) * 1024) for i in range(live_mb * 2 * 1024 * 2 // 5)]
    return blocks[::2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    process = psutil.Process()
    kept = fragmented_heap(args.live_mb)
    for _ in range(20):  # Arrow's pool: allocate and drop 20 arrays of 8 MB
        pa.array(range(1_000_000), type=pa.int64())
    before_mb = process.memory_info().rss / 1e6
    pauses_ms = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        allocator.release_free_memory()
        pauses_ms.append((time.perf_counter() - start) * 1000)
    after_mb = process.memory_info().rss / 1e6
    print(f"{len(kept)} live blocks; RSS {before_mb:.1f} → {after_mb:.1f} MB; "
          f"first trim {pauses_ms[0]:.1f} ms, later median {statistics.median(pauses_ms[1:]):.1f}"
          f" ms (max {max(pauses_ms[1:]):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
