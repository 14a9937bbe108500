"""Work a run repeats on a clock (sampling, polling, auditing, shipping rows, interim
reports), each in a greenlet of its own until stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent


class Every:
    """Calls `action` every `interval_s` on a fixed schedule (a slow call does not push the
    later ones back; ticks it overran are skipped, not run back to back). The first call comes
    after `first_after_s` (default: one interval)."""

    def __init__(self, interval_s: float, action: Callable[[], Any],
                 first_after_s: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval must be positive, got {interval_s}")
        self.interval_s, self.action = interval_s, action
        self.first_after_s = interval_s if first_after_s is None else first_after_s
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        """Kill the greenlet and wait until it is dead (an action in progress is interrupted
        at its next switch, not finished)."""
        if self._greenlet is not None:
            self._greenlet.kill()

    def _loop(self) -> None:
        due = time.monotonic() + self.first_after_s
        while True:
            gevent.sleep(max(0.0, due - time.monotonic()))
            self.action()
            due += self.interval_s
            now = time.monotonic()
            if due < now:
                due = now + self.interval_s - (now - due) % self.interval_s
