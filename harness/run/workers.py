"""Generator processes on this machine (`--workers N`): each runs `nova-harness worker`
(harness/run/worker.py) and connects to the run's Locust master."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent

from harness.errors import TargetUnreachable

CONNECT_TIMEOUT_S = 60.0


class LocalWorkers:
    """`start()` launches the workers and waits until every one has connected; `stop()` waits
    for them to leave (the master's quit tells them), then ends those that did not."""

    def __init__(self, runner: Any, count: int, logs_dir: Path) -> None:
        self.runner, self.count, self.logs_dir = runner, count, logs_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        port = self.runner.server.port
        for index in range(1, self.count + 1):
            with open(self.logs_dir / f"worker-{index}.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "harness.cli", "worker", "--master",
                     f"127.0.0.1:{port}", "--index", str(index)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.time() + CONNECT_TIMEOUT_S
        while len(self.runner.clients.ready) < self.count:
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                raise TargetUnreachable(f"{len(self.runner.clients.ready)} of {self.count} "
                                        f"workers connected; logs in {self.logs_dir}")
            gevent.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=5)
