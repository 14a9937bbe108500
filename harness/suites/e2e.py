"""Checklist §13, end to end: one complete session from creation to the metrics that record
it, and three concurrent streams with twenty viewers each that never see each other's
events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.suites.actions import publisher_for, read_stream, stream_key, viewer, wait_status
from harness.suites.base import Session, check, expect
from harness.suites.viewer_probe import ViewerProbe

CONCURRENT_STREAMS, VIEWERS_EACH = 3, 20
STREAM_VIEWERS_SERIES = "nova_streaming_stream_viewers"
END_ORDER = (1, 2, 0)  # not the order the streams were created in


def _stream_gauge(s: Session, stream_id: str) -> float | None:
    """The per-stream viewers gauge of `stream_id` in /metrics (None when absent). It is
    refreshed from the shared state at scrape time, so any instance behind a balancer agrees."""
    response = s.request("GET", s.target.metrics_url)
    expect(response.status_code == 200, f"/metrics: HTTP {response.status_code}")
    for metric in text_string_to_metric_families(response.text):
        for sample in metric.samples:
            if sample.name == STREAM_VIEWERS_SERIES and \
                    sample.labels.get("stream_id") == stream_id:
                return float(sample.value)
    return None


@check("e2e", "complete-session", "§13 complete session: create, view, broadcast, HLS, "
                                  "counts, end, record, then the metrics check")
def complete_session(s: Session) -> str:
    steps: list[str] = []
    _, owner = s.user()
    stream = s.create_stream(owner, "e2e session")
    stream_id = s.stream_id(stream)
    steps.append("1 created")
    probes = [viewer(s, stream_id) for _ in range(3)]
    try:
        expect(all(p.wait_for("connection_established", 5.0) for p in probes),
               "a viewer got no connection_established")
        steps.append("2 viewers connected")
        with publisher_for(s, stream_key(s, stream_id)) as publisher:
            wait_status(s, stream_id, "active", 10.0, publisher)
            steps.append("3 broadcast live")
            expect(all(p.wait_for("stream_started", 5.0) for p in probes),
                   "a viewer got no stream_started")
            steps.append("4 viewers saw it start")
            hls_s = _playlist_ready(s, stream)
            steps.append(f"5 HLS playlist in {hls_s:.1f} s")
            expect(int(read_stream(s, stream_id).get(s.target.profile.fields.viewers) or 0) == 3,
                   "the API does not count the 3 viewers")
            steps.append("6 API counts 3 viewers")
            during = _stream_gauge(s, stream_id)
            publisher.stop()
        wait_status(s, stream_id, "ended", 10.0)
        steps.append("7 ended when the broadcaster stopped")
        expect(all(p.wait_for("stream_ended", 5.0) for p in probes),
               "a viewer got no stream_ended")
        steps.append("8 viewers told and closed")
    finally:
        for probe in probes:
            probe.close()
    final = read_stream(s, stream_id)
    expect(final.get("duration_seconds", 0) > 0 and
           bool(final.get(s.target.profile.fields.ended_at)),
           "no final duration or ended_at recorded")
    steps.append("9 duration and ended_at recorded")
    after = _stream_gauge(s, stream_id)
    expect(during == 3 and after is None, f"/metrics viewers gauge of the stream: {during} "
                                          f"while live (3 expected), {after} after the end "
                                          "(absent expected)")
    return "; ".join([*steps, "/metrics showed 3 viewers while live and dropped it after"])


def _playlist_ready(s: Session, stream: dict[str, Any]) -> float:
    url = str(s.target.profile.stream_field(stream, "hls_url"))
    started = time.monotonic()
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() - started < 10.0:
            response = client.get(url)
            if response.status_code == 200 and "#EXTM3U" in response.text:
                s.note("GET HLS playlist (key in the URL, not recorded)", 200,
                       response.text, time.perf_counter())
                return time.monotonic() - started
            time.sleep(0.25)
    expect(False, "no HLS playlist within 10 s")
    return 0.0


@check("e2e", "concurrent-isolated",
       f"§13 {CONCURRENT_STREAMS} streams with {VIEWERS_EACH} viewers each: own events only, "
       "independent counts, any end order")
def concurrent_isolated(s: Session) -> str:
    _, owner = s.user()
    ids = [s.stream_id(s.create_stream(owner, f"concurrent {n}"))
           for n in range(CONCURRENT_STREAMS)]
    viewers_of = {sid: [viewer(s, sid) for _ in range(VIEWERS_EACH)] for sid in ids}
    try:
        with _all_publishing(s, ids) as stop:
            counts = {sid: _settled_count(s, sid) for sid in ids}
            stopped_at = {}
            for index in END_ORDER:
                stopped_at[ids[index]] = time.time()
                stop(ids[index])
                wait_status(s, ids[index], "ended", 10.0)
        for probes in viewers_of.values():
            for probe in probes:
                probe.wait_for("stream_ended", 5.0)
    finally:
        for probes in viewers_of.values():
            for probe in probes:
                probe.close()
    expect(all(c == VIEWERS_EACH for c in counts.values()), f"counts per stream {counts}")
    crossed = _crossed(viewers_of)
    expect(not crossed, f"events of another stream arrived: {crossed[:3]}")
    _check_end_order(viewers_of, stopped_at)
    return (f"{CONCURRENT_STREAMS} streams x {VIEWERS_EACH} viewers, each counted "
            f"{VIEWERS_EACH}; "
            f"no event crossed streams; ended in order {list(END_ORDER)}")


@contextmanager
def _all_publishing(s: Session, ids: list[str]) -> Iterator[Callable[[str], object]]:
    """A publisher per stream, all active when the block starts; yields stop(stream_id)."""
    with ExitStack() as stack:
        publishers = {sid: stack.enter_context(publisher_for(s, stream_key(s, sid)))
                      for sid in ids}
        for sid, publisher in publishers.items():
            wait_status(s, sid, "active", 10.0, publisher)
        yield lambda sid: publishers[sid].stop()


def _settled_count(s: Session, stream_id: str) -> int:
    time.sleep(0.3)  # one coalescing window and delivery
    return int(read_stream(s, stream_id).get(s.target.profile.fields.viewers) or -1)


def _crossed(viewers_of: dict[str, list[ViewerProbe]]) -> list[tuple[str, str]]:
    return [(own, str(frame.data.get("stream_id"))) for own, probes in viewers_of.items()
            for probe in probes for frame in probe.frames
            if frame.data.get("stream_id") not in (own, None)]


def _check_end_order(viewers_of: dict[str, list[ViewerProbe]],
                     stopped_at: dict[str, float]) -> None:
    """Every viewer got exactly one stream_ended, after its own stream's publisher was stopped
    (the others, stopped earlier, did not end it)."""
    for stream_id, probes in viewers_of.items():
        for probe in probes:
            ends = [f for f in probe.frames if f.event == "stream_ended"]
            expect(len(ends) == 1, f"a viewer of {stream_id[:8]} got {len(ends)} stream_ended")
            expect(ends[0].received_s >= stopped_at[stream_id],
                   f"a viewer of {stream_id[:8]} was told its stream ended before it was stopped")
