"""Where a process's resident memory lives, by kind of mapping, sampled on a clock: the main
malloc heap, anonymous mappings (other malloc arenas, mmap'd large blocks, Arrow's pool,
Python's object arenas, greenlet and thread stacks), the main thread's stack and file-backed
mappings (libraries). A soak whose RSS
creeps while the Python heap is flat shows here which kind grows. With `--mappings FILE` it
also writes every anonymous mapping's resident anonymous kB per sample (JSON lines), so a step
can be pinned to the mappings that took it: pymalloc's 1 MiB arenas, a malloc arena's 64 MiB
heap, Arrow's pool segments or a thread stack tell themselves apart by size and neighbours.

    python bench/smaps_kinds.py PID [--every 60] [--minutes 40] [--mappings maps.jsonl] > kinds.tsv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def kind_of(header: str) -> str:
    """The kind of one /proc/PID/smaps mapping from its header line."""
    fields = header.split()
    path = fields[5] if len(fields) > 5 else ""
    if path == "[heap]":
        return "heap"
    if path.startswith("[stack"):
        return "stack"
    if path.startswith("/"):
        return "file"
    return "anon" if not path else "other"


def resident_by_kind(pid: int) -> dict[str, int]:
    """Rss in kB per kind of mapping, plus the count of anonymous mappings."""
    totals = {"heap": 0, "anon": 0, "stack": 0, "file": 0, "other": 0, "anon_maps": 0}
    kind = "other"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if not first.endswith(":"):
            kind = kind_of(line)
            totals["anon_maps"] += kind == "anon"
        elif first == "Rss:":
            totals[kind] += int(line.split()[1])
    return totals


def anonymous_by_mapping(pid: int) -> dict[str, int]:
    """Anonymous kB of each mapping that has any, keyed "start-end perms"."""
    mappings: dict[str, int] = {}
    key = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if not first.endswith(":"):
            fields = line.split()
            key = f"{fields[0]} {fields[1]}"
        elif first == "Anonymous:" and (kb := int(line.split()[1])):
            mappings[key] = kb
    return mappings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--minutes", type=float, default=40.0, help="stop after this long")
    parser.add_argument("--mappings", type=Path, help="also write per-mapping anonymous kB here")
    args = parser.parse_args()
    start = time.monotonic()
    print("minute\theap_mb\tanon_mb\tstack_mb\tfile_mb\tanon_maps", flush=True)
    while time.monotonic() - start < args.minutes * 60:
        try:
            kinds = resident_by_kind(args.pid)
        except FileNotFoundError:
            print(f"process {args.pid} ended", file=sys.stderr)
            return 0
        minute = (time.monotonic() - start) / 60
        if args.mappings:
            with args.mappings.open("a") as out:
                out.write(json.dumps({"minute": round(minute, 2),
                                      "anon_kb": anonymous_by_mapping(args.pid)}) + "\n")
        print(f"{minute:.1f}\t" + "\t".join(
            f"{kinds[k] / 1024:.1f}" for k in ("heap", "anon", "stack", "file"))
              + f"\t{kinds['anon_maps']}", flush=True)
        time.sleep(args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
