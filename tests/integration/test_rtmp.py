"""A real ffmpeg publish through the real nginx-rtmp: activation without an API call, HLS,
end on disconnect, refusal of unknown keys."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from harness.load.publisher import Publisher, ensure_clip
from harness.suites.viewer_probe import ViewerProbe
from tests.support import RunningStack, wait_for

MEDIA_SEQUENCE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


def segments(playlist_url: str) -> list[str]:
    response = httpx.get(playlist_url, timeout=2)
    if response.status_code != 200:
        return []
    return [line for line in response.text.splitlines() if line.endswith(".ts")]


def test_publish_activates_streams_hls_and_ends_on_disconnect(
        stack: RunningStack, api: httpx.Client, new_stream: dict[str, Any],
        tmp_path: Path) -> None:
    sid = str(new_stream["id"])
    viewer = ViewerProbe(f"{stack.ws}/api/v1/streams/{sid}/ws?token={stack.minter.mint()}")
    viewer.connect()
    publisher = Publisher(stack.state.endpoints["rtmp_url"], str(new_stream["rtmp_key"]),
                          ensure_clip(), tmp_path / "ffmpeg.log")
    started = time.monotonic()
    publisher.start()
    try:
        # No API call between the publish and the stream being live.
        assert wait_for(lambda: api.get(f"/api/v1/streams/{sid}").json()["status"] == "active",
                        3.0), publisher.stderr_tail()
        active_after_s = time.monotonic() - started
        assert active_after_s < 3.0
        assert viewer.wait_for("stream_started", 3.0) is not None
        playlist = str(new_stream["hls_playlist_url"])
        assert wait_for(lambda: len(segments(playlist)) >= 1, 8.0, 0.2)
        first = segments(playlist)
        # Timestamp-named segments: the name is the stream time in ms.
        assert all(re.fullmatch(r"\d+\.ts", s) for s in first)
        assert wait_for(lambda: segments(playlist)[-1] != first[-1], 6.0, 0.2), "HLS not growing"
        segment = httpx.get(playlist.rsplit("/", 1)[0] + "/" + segments(playlist)[-1])
        assert segment.status_code == 200 and segment.content[:1] == b"\x47"  # MPEG-TS sync
        body = api.get(f"/api/v1/streams/{sid}").json()
        assert body["duration_seconds"] > 0
    finally:
        publisher.stop()
    ended = viewer.wait_for("stream_ended", 5.0)
    assert ended is not None and ended.data["reason"] == "connection_lost"
    assert viewer.closed.wait(5) and viewer.close_code == 1000
    body = api.get(f"/api/v1/streams/{sid}").json()
    assert body["status"] == "ended" and body["ended_at"] >= body["started_at"]


def test_publish_with_unknown_key_is_refused(stack: RunningStack, tmp_path: Path) -> None:
    # Two instances behind nginx: sum the counter on both to see the rejection.
    before = sum(_instance_errors(stack, n) for n in ("api-1", "api-2"))
    publisher = Publisher(stack.state.endpoints["rtmp_url"], "sk_not_a_real_key", ensure_clip(),
                          tmp_path / "ffmpeg.log")
    publisher.start()
    assert wait_for(lambda: not publisher.running, 5.0), "ffmpeg kept publishing"
    assert publisher.exit_code() != 0
    after = sum(_instance_errors(stack, n) for n in ("api-1", "api-2"))
    assert after == before + 1


def _instance_errors(stack: RunningStack, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{stack.instance_url(name)}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text)
               if f.name == "nova_streaming_broadcast_errors"
               for s in f.samples
               if s.labels.get("error_type") == "rejected_key" and s.name.endswith("_total"))
