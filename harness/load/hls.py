"""HLS playback at the live edge, at real-time pace: startup time, segment fetch time and size,
404s at the edge, stalls (a simulated player buffer runs dry), live-edge lag, and
ingest-to-playlist delay from segments named by the time they were started (nginx-rtmp's
`hls_fragment_naming system`: epoch milliseconds)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import gevent
from geventhttpclient import URL, HTTPClient

from harness.load.context import StreamPlan, UserContext
from records.schema import (
    HLS_INGEST_DELAY,
    HLS_LIVE_LAG,
    HLS_PLAYLIST,
    HLS_SEGMENT,
    HLS_STALL,
    HLS_STARTUP,
)

START_SEGMENTS = 3
_TARGET = re.compile(r"#EXT-X-TARGETDURATION:(\d+(?:\.\d+)?)")
_SEGMENT = re.compile(r"#EXTINF:(\d+(?:\.\d+)?),[^\n]*\n([^\n#][^\n]*)")
_NAMED_MS = re.compile(r"(\d{12,14})\.ts(?:\?.*)?$")
# Names below this are not wall-clock milliseconds (sequence numbers, stream time).
_EPOCH_MS_FLOOR = 1_000_000_000_000  # September 2001


@dataclass(frozen=True)
class Segment:
    uri: str
    duration_s: float


def parse_playlist(text: str) -> tuple[float, list[Segment]]:
    """(target duration, segments in order) of a live media playlist."""
    target = _TARGET.search(text)
    segments = [Segment(uri.strip(), float(d)) for d, uri in _SEGMENT.findall(text)]
    return (float(target.group(1)) if target else 2.0), segments


def named_start_s(uri: str) -> float | None:
    """The wall-clock second a segment named in epoch milliseconds was started, else None."""
    found = _NAMED_MS.search(uri)
    if found is None or int(found.group(1)) < _EPOCH_MS_FLOOR:
        return None
    return int(found.group(1)) / 1000


def ingest_delays_ms(new: list[Segment], previous_fetch_s: float,
                     this_fetch_s: float) -> list[float]:
    """Ingest-to-playlist delay of segments that appeared between two playlist fetches: the
    time they were first listed (taken as the middle of the two fetches, so within half the
    poll interval) minus the time their last frame was ingested (named start + duration)."""
    seen_s = (previous_fetch_s + this_fetch_s) / 2
    delays = []
    for segment in new:
        start_s = named_start_s(segment.uri)
        if start_s is not None:
            delays.append((seen_s - (start_s + segment.duration_s)) * 1000)
    return delays


class HlsPlayer:
    """One viewer's HLS session; started when the viewer sees `stream_started`."""

    def __init__(self, ctx: UserContext, stream: StreamPlan, user: str) -> None:
        self.ctx, self.stream, self.user = ctx, stream, user
        url = URL(stream.hls_url)
        self.base_path = url.path.rsplit("/", 1)[0]
        self.client = HTTPClient.from_url(url, concurrency=1, network_timeout=10,
                                          connection_timeout=5)
        self.playlist_path = url.request_uri
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.fetched: set[str] = set()
        self.listed: set[str] = set()  # the last playlist's segments
        self.listed_at_s: float | None = None

    def start(self) -> None:
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._play)

    def stop(self) -> None:
        # The player must be gone before its connection pool closes under it.
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=2)
        self.client.close()

    def _get(self, path: str, kind: str, waiting: bool = False) -> tuple[int, bytes] | None:
        """One fetch, recorded. While `waiting` (no playlist yet after `stream_started`) a 404
        is expected: nginx writes the first playlist ~2 s after the publish starts."""
        started = time.time()
        try:
            response = self.client.get(path)
            body = response.read()
            status = response.status_code
        except (OSError, gevent.Timeout) as exc:
            self.ctx.sample(started, kind, kind, (time.time() - started) * 1000, False,
                            error=type(exc).__name__, user=self.user, stream=self.stream.id)
            return None
        ok = status == 200 or (waiting and status == 404)
        name = "waiting" if waiting and status == 404 else kind
        self.ctx.sample(started, kind, name, (time.time() - started) * 1000, ok, status,
                        None if ok else ("edge_404" if status == 404 else f"HTTP {status}"),
                        len(body), self.user, self.stream.id)
        return status, body

    def _play(self) -> None:
        started = time.time()
        buffer_s, playing_since, stall_started = 0.0, None, None
        last = time.time()
        while True:
            now = time.time()
            if playing_since is not None:
                buffer_s -= now - last
                if buffer_s < 0 and stall_started is None:
                    stall_started = now + buffer_s  # when the buffer actually ran dry
                    self.ctx.event("hls_stall_started", self.stream.id, self.user)
            last = now
            result = self._get(self.playlist_path, HLS_PLAYLIST,
                               waiting=playing_since is None)
            target_s = 2.0
            if result is None or result[0] != 200:
                self.listed_at_s = None  # when the next playlist's segments appeared is unknown
            else:
                target_s, segments = parse_playlist(result[1].decode(errors="replace"))
                self._record_ingest_delays(segments, now)
                added_s = self._fetch_new(segments, first=playing_since is None)
                if added_s:
                    if playing_since is None:
                        playing_since = time.time()
                        self.ctx.sample(started, HLS_STARTUP, "startup",
                                        (playing_since - started) * 1000, True, user=self.user,
                                        stream=self.stream.id)
                    buffer_s = max(buffer_s, 0.0) + added_s
                    if stall_started is not None:
                        self.ctx.sample(stall_started, HLS_STALL, "stall",
                                        (time.time() - stall_started) * 1000, True,
                                        user=self.user, stream=self.stream.id)
                        stall_started = None
                pending_s = sum(s.duration_s for s in segments if s.uri not in self.fetched)
                if playing_since is not None:
                    self.ctx.sample(time.time(), HLS_LIVE_LAG, "live_lag",
                                    (max(buffer_s, 0.0) + pending_s) * 1000, True,
                                    user=self.user, stream=self.stream.id)
            gevent.sleep(max(target_s / 2, 0.5))

    def _record_ingest_delays(self, segments: list[Segment], fetched_s: float) -> None:
        """Delays of the segments this playlist added (none on the first playlist: when its
        segments appeared is unknown)."""
        if self.listed_at_s is not None:
            new = [s for s in segments if s.uri not in self.listed]
            for delay_ms in ingest_delays_ms(new, self.listed_at_s, fetched_s):
                self.ctx.sample(fetched_s, HLS_INGEST_DELAY, "ingest_to_playlist", delay_ms,
                                True, user=self.user, stream=self.stream.id)
        self.listed = {s.uri for s in segments}
        self.listed_at_s = fetched_s

    def _fetch_new(self, segments: list[Segment], first: bool) -> float:
        """Fetch segments not yet played; the first time only the newest three (players start
        three target durations from the live edge, or every segment boundary is a stall)."""
        # Only the playlist's current segments are remembered: a segment that slid out of the
        # live window never comes back, and a four-hour soak must not keep every name.
        self.fetched.intersection_update(s.uri for s in segments)
        todo = [s for s in segments if s.uri not in self.fetched]
        if first:
            self.fetched.update(s.uri for s in todo[:-START_SEGMENTS])
            todo = todo[-START_SEGMENTS:]
        added_s = 0.0
        for segment in todo:
            path = segment.uri if segment.uri.startswith("/") else \
                f"{self.base_path}/{segment.uri}"
            result = self._get(path, HLS_SEGMENT)
            self.fetched.add(segment.uri)
            if result is not None and result[0] == 200:
                added_s += segment.duration_s
        return added_s
