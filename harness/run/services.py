"""What a run starts, behind one small interface: each part has `start()` and `stop()`; the
run starts them in order and `Services.stop_all()` stops them in reverse, each stop guarded,
so one that fails neither leaks the others nor hides the run's own outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent

from harness.runtime.periodic import Every
from records.recorder import Recorder

log = logging.getLogger(__name__)


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Started:
    """A part already running when it is handed over (a stack, a fleet that is publishing):
    only its stop is the services' to call."""

    stop_action: Callable[[], Any]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stop_action()


class Services:
    """The run's started parts, stopped in reverse start order."""

    def __init__(self) -> None:
        self._started: list[tuple[str, Service]] = []
        self.stop_errors: list[str] = []

    def start(self, name: str, service: Service) -> None:
        """Start `service` and own its stop from then on, also when the start fails half-way
        (workers launched but not all connected): every stop copes with a part that never
        fully started."""
        self._started.append((name, service))
        service.start()

    def adopt(self, name: str, stop: Callable[[], Any]) -> None:
        """Own the stop of something that started by other means."""
        self._started.append((name, Started(stop)))

    def names(self) -> list[str]:
        return [name for name, _ in self._started]

    def stop_all(self) -> None:
        """Stop every part, the last started first; a stop that raises is logged and kept in
        `stop_errors`, and the rest are still stopped. Calling it again does nothing."""
        while self._started:
            name, service = self._started.pop()
            try:
                service.stop()
            except Exception as exc:  # one broken stop must not leak the others
                log.exception("stopping %s failed", name)
                self.stop_errors.append(f"stopping {name}: {type(exc).__name__}: {exc}")


class RecorderClock:
    """The Recorder's own clock: buffered rows go to part files every `flush_interval_s`, and
    the parts are merged every `compact_interval_s` (in a greenlet of their own: compaction
    waits for a child process)."""

    def __init__(self, recorder: Recorder, compact_interval_s: float = 600.0) -> None:
        self.recorder = recorder
        self._flush = Every(min(0.5, recorder.flush_interval_s), recorder.maybe_flush)
        self._compact = Every(compact_interval_s, lambda: gevent.spawn(recorder.compact_now))

    def start(self) -> None:
        self._flush.start()
        self._compact.start()

    def stop(self) -> None:
        self._compact.stop()
        self._flush.stop()
