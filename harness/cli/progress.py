"""Live terminal progress of a run (rich): viewers connected vs target per stream, events/s,
p95 push latency, API rate and errors, broadcaster states, harness CPU, time left. Without a
terminal it prints one line every 10 s instead."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from harness.run.engine import Run


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.interactive = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> Progress:
        if self.interactive:
            self.live = Live(console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, run: Run) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self.table(run))
        elif time.time() - self._last_line >= 10:
            self._last_line = time.time()
            # Without a terminal rich would wrap at 80 columns: one whole line per report.
            self.console.print(self.line(run), soft_wrap=True, highlight=False)

    def _figures(self, run: Run) -> dict[str, str]:
        s, live = run.scenario, run.live
        elapsed = time.time() - (run.stages[0]["start"] if run.stages else time.time())
        rate, errors = live.http_rate()
        push = live.push_p95_ms()
        return {
            "stage": run.stages[-1]["name"] if run.stages else "starting",
            "viewers": f"{sum(live.connected.values())}/{s.planned_viewers}",
            "events/s": f"{live.events_per_s():.0f}",
            "push p95": f"{push:.1f} ms" if push is not None else "-",
            "api": f"{rate:.1f}/s, {errors} errors",
            "broadcasters": ", ".join(run.fleet.states()) if run.fleet else "-",
            "harness cpu": f"{run.watch.cpu_max_pct:.0f}% max",
            "left": f"{max(0.0, s.load.total_s - elapsed):.0f} s",
        }

    def line(self, run: Run) -> str:
        return " | ".join(f"{k} {v}" for k, v in self._figures(run).items())

    def table(self, run: Run) -> Table:
        table = Table(title=f"nova-harness run {run.run_id}", show_header=False)
        for key, value in self._figures(run).items():
            table.add_row(key, value)
        per_stream = run.scenario.viewers.per_stream
        for broadcast in run.fleet.broadcasts if run.fleet else []:
            sid = broadcast.plan.id
            table.add_row(f"stream {sid[:8]}",
                          f"{run.live.connected.get(sid, 0)}/{per_stream} viewers, "
                          f"{broadcast.state}")
        return table
