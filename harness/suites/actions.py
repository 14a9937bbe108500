"""Steps several checks take: list every active stream, read a stream as an admin, wait for a
status, publish over RTMP with ffmpeg, open a viewer socket. Each records its evidence."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.load.publisher import Publisher, ensure_clip
from harness.suites.base import Session, expect
from harness.suites.viewer_probe import ViewerProbe

PAGE_LIMIT = 100
ACTIVE_WITHIN_S = 10.0


def active_ids(s: Session, token: str) -> set[str]:
    """Ids of every active stream the listing returns (all pages)."""
    profile, ids, offset = s.target.profile, set(), 0
    while True:
        query = f"{profile.listing.limit_param}={PAGE_LIMIT}&{profile.listing.offset_param}="
        query += str(offset if profile.listing.paging == "offset" else offset // PAGE_LIMIT + 1)
        response = s.request("GET", f"{profile.path('list_active')}?{query}", token=token)
        expect(response.status_code == 200, f"listing active streams: HTTP "
                                            f"{response.status_code}")
        page = profile.streams_of(response.json())
        ids |= {str(profile.stream_field(stream, "id")) for stream in page}
        offset += PAGE_LIMIT
        if len(page) < PAGE_LIMIT:
            return ids


def stream_key(s: Session, stream_id: str) -> str:
    _, admin = s.user(admin=True)
    body = s.request("GET", s.target.profile.path("get", stream_id), token=admin).json()
    return str(s.target.profile.stream_field(body, "key"))


def read_stream(s: Session, stream_id: str) -> dict[str, Any]:
    _, admin = s.user(admin=True)
    response = s.request("GET", s.target.profile.path("get", stream_id), token=admin)
    expect(response.status_code == 200, f"reading the stream: HTTP {response.status_code}")
    body: dict[str, Any] = response.json()
    return body


def wait_status(s: Session, stream_id: str, wanted: str, timeout_s: float,
                publisher: Publisher | None = None) -> float:
    """Seconds until the API reports `wanted`; fails after `timeout_s` (or when the
    publisher that should keep the stream up exits)."""
    started = time.monotonic()
    while s.target.profile.status_of(read_stream(s, stream_id)) != wanted:
        if publisher is not None:
            expect(publisher.running, "ffmpeg exited: " + publisher.stderr_tail(2))
        expect(time.monotonic() - started < timeout_s,
               f"not {wanted} within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


@contextmanager
def publisher_for(s: Session, key: str) -> Iterator[Publisher]:
    """An ffmpeg publisher on `key` (stopped when the block ends, if still running)."""
    with tempfile.TemporaryDirectory() as logs:
        publisher = Publisher(s.target.rtmp_url, key, ensure_clip(), Path(logs) / "ffmpeg.log")
        publisher.start()
        try:
            yield publisher
        finally:
            if publisher.running:
                publisher.stop()


@contextmanager
def publishing(s: Session, stream_id: str) -> Iterator[Publisher]:
    """As publisher_for, and the block starts once the API reports the stream active."""
    started = time.perf_counter()
    with publisher_for(s, stream_key(s, stream_id)) as publisher:
        wait_status(s, stream_id, "active", ACTIVE_WITHIN_S, publisher)
        s.note("RTMP publish (key not recorded) until active", None, "active", started)
        yield publisher


def viewer(s: Session, stream_id: str, token: str | None = None) -> ViewerProbe:
    """A connected viewer socket (a new user's token unless given); the token stays out of
    the evidence."""
    token = token or s.user()[1]
    started = time.perf_counter()
    probe = ViewerProbe(s.target.profile.ws_url(s.target.ws_base, stream_id, token),
                        source_address=s.source_address).connect()
    s.note(f"WS connect to stream {stream_id[:8]}", 101, "", started)
    return probe
