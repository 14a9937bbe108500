"""Ingest-to-playlist delay from segment names: which names carry wall-clock milliseconds, and
how a segment's first listing between two playlist fetches becomes a delay."""

from __future__ import annotations

import pytest

from harness.load.hls import Segment, ingest_delays_ms, named_start_s, parse_playlist

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-TARGETDURATION:2
#EXTINF:2.000,
1795955920000.ts
#EXTINF:2.000,
1795955922000.ts
"""


@pytest.mark.parametrize(("uri", "expected"), [
    ("1795955920000.ts", 1795955920.0),
    ("/hls/key/1795955920123.ts", 1795955920.123),
    ("1795955920000.ts?token=x", 1795955920.0),
    ("12.ts", None),  # sequence naming
    ("17959559200.ts", None),  # too short to be epoch milliseconds
    ("900000000000.ts", None),  # stream time in a 90 kHz clock, not wall-clock
    ("index.m3u8", None),
])
def test_only_epoch_millisecond_names_give_a_start(uri: str, expected: float | None) -> None:
    assert named_start_s(uri) == expected


def test_delay_is_first_listing_minus_the_last_frame_ingested() -> None:
    _, segments = parse_playlist(PLAYLIST)
    # Listed between fetches at .5 and 1.5 s after the second segment's last frame.
    delays = ingest_delays_ms(segments[1:], 1795955924.5, 1795955925.5)
    assert delays == [pytest.approx(1000.0)]


def test_segments_without_epoch_names_give_no_delay() -> None:
    assert ingest_delays_ms([Segment("7.ts", 2.0)], 10.0, 11.0) == []
