"""Whether a broken viewer socket was a drop is only known at the first reconnect.

A server that closes a socket while the viewer's request is still unread sends a TCP reset, and
the reset discards whatever the viewer had not read yet, `stream_ended` included (CI run of
2026-11-29: 1 of 20 viewers at a stream's end, no close code, its reconnect refused 410). So a
break is held until the next connect attempt: refused with the profile's `errors.stream_gone`
(410 on the reference) at that first attempt, it was the stream's end; anything else
(connected, refused otherwise, no answer), it was a drop, recorded at the time the socket
broke. (The reference service now waits for the client's close frame, so it no longer resets;
other targets may.)"""

from __future__ import annotations

from typing import Protocol

from harness.config.profile import Profile
from records.schema import STREAM_GONE_DETAIL


def refused_as_gone(profile: Profile, status: int) -> bool:
    """Whether an upgrade refused with `status` says the stream has ended (the profile's
    `errors.stream_gone`; never, for a target without such a status)."""
    return profile.errors.stream_gone is not None and status == profile.errors.stream_gone


class EventSink(Protocol):
    def event(self, kind: str, stream: str | None = None, user: str | None = None,
              value: float | None = None, detail: str | None = None,
              ts: float | None = None) -> None: ...


class DropTracker:
    """One viewer's broken socket, from the break until the first reconnect attempt says
    what it was."""

    def __init__(self, sink: EventSink, stream: str, user: str) -> None:
        self.sink, self.stream, self.user = sink, stream, user
        self.broken_at_s: float | None = None
        self._undecided = False

    def broke(self, at_s: float) -> None:
        """The socket ended without `stream_ended` and the viewer will reconnect."""
        self.broken_at_s, self._undecided = at_s, True

    def stream_gone(self) -> None:
        """A connect attempt was refused because the stream has ended."""
        if self.broken_at_s is None:
            return
        self._undecided = False  # if still undecided, the stream's end closed it: not a drop
        self.sink.event("stream_ended_seen", self.stream, self.user, detail=STREAM_GONE_DETAIL)
        self.broken_at_s = None

    def attempted(self) -> None:
        """A connect attempt ended any other way: the break was a drop."""
        if self._undecided:
            self._undecided = False
            self.sink.event("viewer_dropped", self.stream, self.user, ts=self.broken_at_s)

    def reconnected(self) -> float | None:
        """The viewer is back: when it broke (None if it had not), and the break is closed."""
        self.attempted()
        broken_at_s, self.broken_at_s = self.broken_at_s, None
        return broken_at_s

    def settle(self) -> None:
        """The viewer stops before any attempt: a break not yet explained counts as a drop."""
        self.attempted()
