"""Generator processes on this machine (`--workers N`): each runs `nova-harness worker`
(harness/run/worker.py) and connects to the run's Locust master; the master's Roster waits
for them (harness/run/master.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class LocalWorkers:
    """`start()` launches the workers; `stop()` waits for them to leave (the master's quit
    tells them), then ends those that did not, by PID."""

    def __init__(self, master_address: str, count: int, logs_dir: Path) -> None:
        self.master_address, self.count, self.logs_dir = master_address, count, logs_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for number in range(1, self.count + 1):
            with open(self.logs_dir / f"local-worker-{number}.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "harness.cli", "worker", "--master",
                     self.master_address],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=5)
