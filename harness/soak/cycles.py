"""Soak mode's moving parts beside the steady load (docs/soak.md): the connect/disconnect cycle
of extra viewers, the interim verdict every few minutes (a separate `analyze --interim`
process, so the generator's memory and event loop never carry the analysis), and the status
file a user can read while a soak runs for hours."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent

from harness.config.scenario import SoakSpec
from harness.load.context import UserContext
from harness.load.viewer import ViewerConnection
from harness.runtime.logfiles import rotated
from harness.runtime.periodic import Every
from records.documents import DocumentError, Verdict, read_document
from records.schema import CYCLE_USER_PREFIX

INTERIM_TIMEOUT_S = 600.0


class CycleDriver:
    """Connects `cycle_viewers` extra viewers spread over the streams and the connect time,
    holds them, disconnects them all, idles; again until stopped. Each phase is an event
    (`cycle_started`, `cycle_connected`, `cycle_disconnected`, `cycle_idle_end`, value =
    the cycle number). Connections are dropped after each cycle: nothing accumulates."""

    def __init__(self, ctx: UserContext, spec: SoakSpec, client: str,
                 first_number: int = 1) -> None:
        self.ctx, self.spec, self.client = ctx, spec, client
        self.first_number = first_number  # a resumed soak goes on counting
        self.done = first_number - 1
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.viewers: list[ViewerConnection] = []

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
        self._disconnect()

    def _loop(self) -> None:
        gevent.sleep(self.spec.cycle_start)
        number = self.first_number - 1
        while True:
            number += 1
            self.ctx.event("cycle_started", value=float(number))
            self._connect(number)
            self.ctx.event("cycle_connected", value=float(number))
            gevent.sleep(self.spec.cycle_hold)
            self._disconnect()
            self.ctx.event("cycle_disconnected", value=float(number))
            gevent.sleep(self.spec.cycle_idle)
            self.ctx.event("cycle_idle_end", value=float(number))
            self.done = number

    def _connect(self, number: int) -> None:
        plan = self.ctx.plan
        assert plan is not None
        gap_s = self.spec.cycle_connect / max(self.spec.cycle_viewers, 1)
        for index in range(self.spec.cycle_viewers):
            stream = plan.streams[index % len(plan.streams)]
            token = plan.viewer_tokens[index % len(plan.viewer_tokens)]
            viewer = ViewerConnection(self.ctx, stream, token,
                                      f"{CYCLE_USER_PREFIX}{number}-v{index}",
                                      client=self.client)
            viewer.start()
            self.viewers.append(viewer)
            gevent.sleep(gap_s)

    def _disconnect(self) -> None:
        viewers, self.viewers = self.viewers, []
        for viewer in viewers:
            viewer.stop()


class InterimReporter:
    """Every `every_s`, judges the folder so far in a child process (`nova-harness analyze
    --interim`), which writes `interim/` (verdict, report, charts); records
    `interim_verdict` events (detail: the verdict)."""

    def __init__(self, ctx: UserContext, results_dir: Path, every_s: float) -> None:
        self.ctx, self.results_dir, self.every_s = ctx, results_dir, every_s
        self.last: dict[str, Any] | None = None
        self.every = Every(every_s, self.report_once)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.every.start()

    def stop(self) -> None:
        self.every.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def report_once(self) -> None:
        log = rotated(self.results_dir / "logs" / "interim.log")
        started = time.time()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "analyze", str(self.results_dir),
                 "--interim"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while self.proc.poll() is None and time.time() - started < INTERIM_TIMEOUT_S:
            gevent.sleep(0.5)
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            status = read_document(self.results_dir / "interim" / "verdict.json",
                                   Verdict).status
        except DocumentError:
            status = "ERROR"
        self.last = {"at": time.time(), "status": status,
                     "took_s": round(time.time() - started, 1)}
        self.ctx.event("interim_verdict", value=self.last["took_s"], detail=status)

