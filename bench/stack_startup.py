"""How fast the local stack comes up and goes down, with and without the analytics roles
(`--analytics`: broker, ClickHouse, events loader), side by side in one run, and how fast an
ffmpeg publish is `active`.

    .venv/bin/python bench/stack_startup.py [--runs 5]

Cold = a new run folder (initdb included); warm = the same folder again. Prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from harness.auth.keys import minter_for
from harness.load.publisher import Publisher, ensure_clip
from stack import local
from stack.roles import StackOptions


def publish_to_active_s(run_dir: Path, endpoints: dict[str, str]) -> float:
    token = minter_for(run_dir=run_dir).mint()
    api = httpx.Client(base_url=endpoints["api_base"],
                       headers={"Authorization": f"Bearer {token}"})
    stream = api.post("/api/v1/streams", json={"title": "bench", "description": ""}).json()
    publisher = Publisher(endpoints["rtmp_url"], stream["rtmp_key"], ensure_clip(),
                          run_dir / "logs" / "bench-ffmpeg.log")
    started = time.monotonic()
    publisher.start()
    try:
        while api.get(f"/api/v1/streams/{stream['id']}").json()["status"] != "active":
            if time.monotonic() - started > 10:
                raise RuntimeError("publish not active within 10 s")
            time.sleep(0.01)
        return time.monotonic() - started
    finally:
        publisher.stop()
        api.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_clip()
    rows: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for analytics in (False, True):  # alternated: this machine's noise hits both alike
            suffix = " +analytics" if analytics else ""
            run_dir = Path(tempfile.mkdtemp(prefix="nova-bench-", dir="/var/tmp"))
            try:
                for kind in ("cold", "warm"):
                    started = time.monotonic()
                    state, _ = local.up(StackOptions(run_dir=run_dir, analytics=analytics))
                    rows.setdefault(f"up {kind}{suffix} (s)", []).append(
                        time.monotonic() - started)
                    if not analytics:
                        rows.setdefault("publish→active (s)", []).append(
                            publish_to_active_s(run_dir, state.endpoints))
                    started = time.monotonic()
                    local.down(run_dir)
                    rows.setdefault(f"down{suffix} (s)", []).append(time.monotonic() - started)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    print(f"{'measure':<28}{'n':>4}{'min':>8}{'median':>8}{'max':>8}")
    for label, values in sorted(rows.items()):
        print(f"{label:<28}{len(values):>4}{min(values):>8.2f}{statistics.median(values):>8.2f}"
              f"{max(values):>8.2f}")


if __name__ == "__main__":
    main()
