"""A worker's sink: rows are batched and sent to the master over Locust's messaging every
second (and once more when the test stops), where the master's Recorder writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.runtime.periodic import Every
from records.schema import Row, table_of

MESSAGE = "nova_rows"


class Shipper:
    def __init__(self, runner: Any, interval_s: float = 1.0,
                 observe: Callable[[Row], None] | None = None) -> None:
        self.runner = runner
        self.observe = observe  # the worker's own series, when it serves them
        self.interval_s = interval_s
        self.buffers: dict[str, list[Row]] = {}
        self.every = Every(interval_s, self.ship)
        self.every.start()

    def add(self, row: Row) -> None:
        self.buffers.setdefault(table_of(row), []).append(row)
        if self.observe is not None:
            self.observe(row)

    def ship(self) -> None:
        if not any(self.buffers.values()):
            return
        batch, self.buffers = self.buffers, {}
        self.runner.send_message(MESSAGE, {t: [list(r) for r in rows]
                                           for t, rows in batch.items()})
