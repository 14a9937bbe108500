"""What compacting result parts does to the generator's RSS: ten minutes of a 250-viewer run's
samples (~300 parts of 300 rows) written by a TableWriter, then compacted — in this process
(as before) or by `python -m records.compactor` (as a run does now) — for a few rounds, side by
side in one run, each in a fresh interpreter so neither inherits the other's heap.

    .venv/bin/python bench/compaction_memory.py [--rounds 4] [--parts 300] [--rows 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from records.recorder import TableWriter, compact
from records.schema import TABLES


def one_mode(mode: str, rounds: int, parts: int, rows: int) -> None:
    """Runs in its own interpreter; prints RSS after each round's compaction."""
    folder = Path(tempfile.mkdtemp(prefix="nova-compaction-")) / "samples"
    writer = TableWriter(folder, TABLES["samples"])
    proc = psutil.Process()
    start_mb = proc.memory_info().rss / 1e6
    after = []
    for _ in range(rounds):
        for _ in range(parts):
            now = time.time()
            for i in range(rows):
                writer.add((now, now, "ws_rtt", "get_stream_info", 1.5, True, 200, None, 100,
                            "local", f"s{i % 5}-v{i}", f"stream-{i % 5}"))
            writer.write_part(writer.take(), writer.next_part)
            writer.next_part += 1
        if mode == "in-process":
            compact(folder)
        else:
            subprocess.run([sys.executable, "-m", "records.compactor", str(folder),
                            str(writer.next_part - 1)], check=True)
        after.append(proc.memory_info().rss / 1e6)
    steps = ", ".join(f"{mb:.1f}" for mb in after)
    print(f"{mode:>10}: RSS {start_mb:.1f} MB at start; after each compaction {steps} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--parts", type=int, default=300)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--mode", choices=["in-process", "child"])
    args = parser.parse_args()
    if args.mode:
        one_mode(args.mode, args.rounds, args.parts, args.rows)
        return
    for mode in ("in-process", "child"):
        subprocess.run([sys.executable, __file__, "--mode", mode, "--rounds", str(args.rounds),
                        "--parts", str(args.parts), "--rows", str(args.rows)], check=True)


if __name__ == "__main__":
    main()
