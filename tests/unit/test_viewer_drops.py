"""A broken viewer socket is a drop unless the first reconnect is refused because the stream
has ended (harness/load/drops.py)."""

from __future__ import annotations

from harness.load.drops import DropTracker


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float | None, str | None]] = []

    def event(self, kind: str, stream: str | None = None, user: str | None = None,
              value: float | None = None, detail: str | None = None,
              ts: float | None = None) -> None:
        assert (stream, user) == ("s1", "v1")
        self.rows.append((kind, ts, detail))


def tracker() -> tuple[DropTracker, Events]:
    events = Events()
    return DropTracker(events, "s1", "v1"), events


def test_a_break_answered_410_at_once_was_the_stream_ending() -> None:
    drops, events = tracker()
    drops.broke(100.0)
    drops.stream_gone()
    drops.settle()
    assert events.rows == [("stream_ended_seen", None, "http_410")]


def test_a_break_then_a_reconnect_is_a_drop_dated_at_the_break() -> None:
    drops, events = tracker()
    drops.broke(100.0)
    assert drops.reconnected() == 100.0
    assert events.rows == [("viewer_dropped", 100.0, None)]
    assert drops.reconnected() is None  # the next connect is not a reconnect
    assert len(events.rows) == 1


def test_a_failed_first_attempt_decides_the_drop_once() -> None:
    drops, events = tracker()
    drops.broke(100.0)
    drops.attempted()  # the service is down: connection refused
    drops.attempted()
    drops.stream_gone()  # the stream ended while it was away: still a drop
    assert events.rows == [("viewer_dropped", 100.0, None),
                           ("stream_ended_seen", None, "http_410")]


def test_a_break_the_stop_cut_short_counts_as_a_drop() -> None:
    drops, events = tracker()
    drops.broke(100.0)
    drops.settle()
    drops.settle()
    assert events.rows == [("viewer_dropped", 100.0, None)]


def test_no_break_no_events() -> None:
    drops, events = tracker()
    assert drops.reconnected() is None
    drops.stream_gone()  # a first connect refused 410: the stream was over before it joined
    drops.settle()
    assert events.rows == []


def test_the_profile_says_which_refusal_means_the_stream_is_gone() -> None:
    from harness.config.profile import load_profile
    from harness.load.drops import refused_as_gone

    doc, served = load_profile("nova-doc"), load_profile("nova-served")
    assert refused_as_gone(doc, 410) and not refused_as_gone(doc, 404)
    # The served variant has no such status: a refused reconnect is never the stream's end.
    assert served.errors.stream_gone is None
    assert not any(refused_as_gone(served, status) for status in (401, 404, 410))
