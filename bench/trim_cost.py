"""What one `allocator.tidy()` costs the event loop, on a heap shaped like a long-running
generator's: many live objects with every other one freed (fragmented), Arrow arrays built and
dropped, and live container objects for the full garbage collection to walk (~100 per viewer).

    python bench/trim_cost.py [--live-mb 200] [--repeat 5] [--viewers 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psutil
import pyarrow as pa

from harness.runtime import allocator, gctune

OBJECTS_PER_VIEWER = 100


def fragmented_heap(live_mb: int) -> list[bytes]:
    """twice live_mb of 1..4 kB blocks (2.5 kB on average), then every other one freed."""
    blocks = [bytes(1024 + (i % 4) * 1024) for i in range(live_mb * 2 * 1024 * 2 // 5)]
    return blocks[::2]


def viewer_graphs(viewers: int) -> list[list[dict[str, object]]]:
    """OBJECTS_PER_VIEWER tracked containers per viewer, each viewer's in one cycle."""
    graphs = []
    for _ in range(viewers):
        nodes: list[dict[str, object]] = [{} for _ in range(OBJECTS_PER_VIEWER - 1)]
        for node, following in zip(nodes, nodes[1:] + nodes[:1], strict=True):
            node["next"] = following
        graphs.append(nodes)
    return graphs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--viewers", type=int, default=10_000,
                        help="live viewer-sized object graphs for the collection to walk")
    args = parser.parse_args()
    gctune.tune_gc()
    graphs = viewer_graphs(args.viewers)
    process = psutil.Process()
    kept = fragmented_heap(args.live_mb)
    for _ in range(20):  # Arrow's pool: allocate and drop 20 arrays of 8 MB
        pa.array(range(1_000_000), type=pa.int64())
    before_mb = process.memory_info().rss / 1e6
    pauses_ms, collect_ms = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        collect_ms.append(gctune.collect_cycles()[1])
        allocator.release_free_memory()
        pauses_ms.append((time.perf_counter() - start) * 1000)
    after_mb = process.memory_info().rss / 1e6
    print(f"{len(kept)} live blocks, {len(graphs) * OBJECTS_PER_VIEWER} live containers; "
          f"RSS {before_mb:.1f} → {after_mb:.1f} MB; first tidy {pauses_ms[0]:.1f} ms, later "
          f"median {statistics.median(pauses_ms[1:]):.1f} ms (max {max(pauses_ms[1:]):.1f}), "
          f"of which the full collection median {statistics.median(collect_ms):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
