"""Compacting a run's result parts in a child process while the run goes on:

    python -m records.compactor TABLE_FOLDER UPTO [TABLE_FOLDER UPTO ...]

Reading and rewriting ten minutes of parts passes tens of MB through Arrow's memory pool, which
keeps what it freed: done inside the generator, each compaction left its RSS ~15 MB higher
(bench/compaction_memory.py), which a soak's memory slope reads as growth. In a child, that
memory goes back to the OS when the child exits."""

from __future__ import annotations

import sys
from pathlib import Path

from records.recorder import compact


def main(argv: list[str]) -> int:
    """Compact each TABLE_FOLDER's parts numbered ≤ UPTO; exit 2 on bad arguments."""
    if not argv or len(argv) % 2:
        print("usage: python -m records.compactor TABLE_FOLDER UPTO [...]", file=sys.stderr)
        return 2
    for folder, upto in zip(argv[::2], argv[1::2], strict=True):
        compact(Path(folder), int(upto))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
