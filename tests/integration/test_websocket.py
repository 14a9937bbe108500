"""The viewer socket: refusals before the upgrade, event order and content, counts across two
instances, keepalive, requests and protocol errors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
import websocket

from harness.load.wsfast import FastSocket
from harness.suites.viewer_probe import ViewerProbe
from tests.support import RunningStack, extra_instance, publish_form, wait_for


def ws_url(base: str, stream_id: str, token: str) -> str:
    return f"{base.replace('http://', 'ws://')}/api/v1/streams/{stream_id}/ws?token={token}"


def handshake_status(url: str) -> int:
    try:
        websocket.create_connection(url, timeout=5).close()
    except websocket.WebSocketBadStatusException as exc:
        return int(exc.status_code)
    return 101


def test_refusals_happen_before_the_upgrade(stack: RunningStack, api: httpx.Client,
                                            new_stream: dict[str, Any]) -> None:
    sid, token = str(new_stream["id"]), stack.minter.mint()
    base = f"{stack.ws}/api/v1/streams/{sid}/ws"
    assert handshake_status(base) == 400
    assert handshake_status(f"{base}?token=") == 400
    assert handshake_status(f"{base}?token=garbage") == 401
    assert handshake_status(f"{base}?token={stack.minter.expired()}") == 401
    assert handshake_status(ws_url(stack.api, str(uuid.uuid4()), token)) == 404
    assert handshake_status(ws_url(stack.api, "nope", token)) == 400  # Nova: invalid stream_id
    assert handshake_status(ws_url(stack.api, sid, token)) == 101
    api.delete(f"/api/v1/streams/{sid}")
    assert handshake_status(ws_url(stack.api, sid, token)) == 410


def test_event_order_through_a_lifecycle(stack: RunningStack, api: httpx.Client,
                                         new_stream: dict[str, Any]) -> None:
    sid = str(new_stream["id"])
    viewer = ViewerProbe(ws_url(stack.api, sid, stack.minter.mint())).connect()
    first = viewer.wait_for("connection_established")
    assert first is not None and viewer.frames[0].event == "connection_established"
    assert first.data["protocol_version"] == "1.0" and first.data["stream_id"] == sid
    uuid.UUID(first.data["session_id"]), uuid.UUID(first.data["viewer_id"])
    assert viewer.wait_for("viewer_count_changed") is not None
    httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form(new_stream["rtmp_key"]))
    started = viewer.wait_for("stream_started")
    assert started is not None
    assert started.data["title"] == "test stream" and started.data["fps"] == 30
    api.post(f"/api/v1/streams/{sid}/quality",
             json={"quality": "480p", "bitrate_kbps": 1200, "fps": 25})
    quality = viewer.wait_for("quality_changed")
    assert quality is not None
    assert (quality.data["previous_quality"], quality.data["new_quality"]) == ("720p", "480p")
    assert (quality.data["previous_bitrate_kbps"], quality.data["new_bitrate_kbps"]) == (2500, 1200)
    assert api.delete(f"/api/v1/streams/{sid}").status_code == 204
    ended = viewer.wait_for("stream_ended")
    assert ended is not None and ended.data["reason"] == "broadcaster_ended"
    assert ended.data["final_viewer_count"] == 1 and ended.data["peak_viewers"] >= 1
    assert viewer.closed.wait(5) and viewer.close_code == 1000
    events = viewer.events()
    assert events.index("stream_started") < events.index("quality_changed") < \
        events.index("stream_ended") == len(events) - 1
    for frame in viewer.frames:
        assert frame.data["stream_id"] == sid and frame.data["timestamp"].endswith("Z")


def last_count(probe: ViewerProbe) -> int | None:
    counts = [f.data["viewer_count"] for f in probe.frames if f.event == "viewer_count_changed"]
    return counts[-1] if counts else None


def test_viewer_count_is_open_sockets_across_two_instances(
        stack: RunningStack, api: httpx.Client, new_stream: dict[str, Any]) -> None:
    sid = str(new_stream["id"])
    httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form(new_stream["rtmp_key"]))
    token = stack.minter.mint()
    on_one = [ViewerProbe(ws_url(stack.instance_url("api-1"), sid, token)).connect()
              for _ in range(3)]
    on_two = [ViewerProbe(ws_url(stack.instance_url("api-2"), sid, token)).connect()
              for _ in range(2)]
    everyone = on_one + on_two
    assert wait_for(lambda: all(last_count(p) == 5 for p in everyone), 5.0), \
        [last_count(p) for p in everyone]
    assert api.get(f"/api/v1/streams/{sid}").json()["viewer_count"] == 5
    for probe in on_two:
        probe.close()
    assert wait_for(lambda: all(last_count(p) == 3 for p in on_one), 5.0)
    body = api.get(f"/api/v1/streams/{sid}").json()
    assert body["viewer_count"] == 3 and body["peak_viewers"] == 5
    # Stream-level events fan out to both instances' viewers.
    api.delete(f"/api/v1/streams/{sid}")
    for probe in on_one:
        assert probe.wait_for("stream_ended") is not None


def test_viewer_counts_are_coalesced(stack: RunningStack, new_stream: dict[str, Any]) -> None:
    sid = str(new_stream["id"])
    token = stack.minter.mint()
    url = ws_url(stack.instance_url("api-1"), sid, token)
    watcher = ViewerProbe(url).connect()
    assert wait_for(lambda: last_count(watcher) == 1, 5.0)
    crowd = [ViewerProbe(url) for _ in range(20)]
    started = time.monotonic()
    for probe in crowd:
        probe.connect()
    joined_s = time.monotonic() - started
    assert wait_for(lambda: last_count(watcher) == 21, 5.0)
    updates = [f for f in watcher.frames if f.event == "viewer_count_changed"]
    # One event per coalescing window (100 ms), not one per join.
    windows = int(joined_s / 0.1) + 2
    assert 2 <= len(updates) <= min(windows + 1, 21), (len(updates), joined_s)
    total = sum(f.data["change"] for f in updates)
    assert total == 21
    for probe in crowd:
        probe.close()


def test_counts_are_right_after_many_leave_at_once(
        stack: RunningStack, api: httpx.Client, new_stream: dict[str, Any]) -> None:
    """A crowd on two instances that disconnects in the same instant, as the harness's soak
    cycles do (close frame, then the socket): every leave is counted, none is overwritten by
    an earlier, slower write."""
    sid = str(new_stream["id"])
    httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form(new_stream["rtmp_key"]))
    token = stack.minter.mint()
    watcher = ViewerProbe(ws_url(stack.instance_url("api-1"), sid, token)).connect()
    urls = [ws_url(stack.instance_url(name), sid, token) for name in ("api-1", "api-2")]
    for _ in range(5):
        crowd = [FastSocket(urls[n % 2], []) for n in range(40)]
        for sock in crowd:
            sock.connect()
        assert wait_for(lambda: last_count(watcher) == 41, 5.0), last_count(watcher)
        for sock in crowd:
            sock.close()
        assert wait_for(lambda: last_count(watcher) == 1, 5.0), last_count(watcher)
        assert api.get(f"/api/v1/streams/{sid}").json()["viewer_count"] == 1


def test_get_stream_info_round_trip(stack: RunningStack, new_stream: dict[str, Any]) -> None:
    viewer = ViewerProbe(ws_url(stack.api, str(new_stream["id"]), stack.minter.mint())).connect()
    viewer.send("get_stream_info", request_id="req-42")
    info = viewer.wait_for("stream_info")
    assert info is not None
    assert info.data["request_id"] == "req-42" and info.data["status"] == "scheduled"
    assert {"viewer_count", "peak_viewers", "quality", "bitrate_kbps", "fps",
            "duration_seconds"} <= set(info.data)


def test_unknown_event_gets_a_recoverable_error(stack: RunningStack,
                                                new_stream: dict[str, Any]) -> None:
    viewer = ViewerProbe(ws_url(stack.api, str(new_stream["id"]), stack.minter.mint())).connect()
    viewer.send("dance")
    error = viewer.wait_for("error")
    assert error is not None and error.data["recoverable"] is True
    assert error.data["error_code"] == "UNKNOWN_EVENT"
    assert not viewer.closed.is_set()


@pytest.mark.parametrize("garbage", ["{not json", "[1,2]", '{"data": {}}', "42"])
def test_garbage_closes_with_1003(stack: RunningStack, new_stream: dict[str, Any],
                                  garbage: str) -> None:
    viewer = ViewerProbe(ws_url(stack.api, str(new_stream["id"]), stack.minter.mint())).connect()
    assert viewer.wait_for("connection_established") is not None
    viewer.send_raw(garbage)
    assert viewer.closed.wait(5) and viewer.close_code == 1003


def test_protocol_ping_is_answered(stack: RunningStack, new_stream: dict[str, Any]) -> None:
    conn = websocket.create_connection(ws_url(stack.api, str(new_stream["id"]),
                                              stack.minter.mint()), timeout=5)
    conn.ping(b"hello")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        opcode, frame = conn.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_PONG:
            assert frame.data == b"hello"
            break
    else:
        pytest.fail("no pong for a protocol ping")
    conn.close()


def test_ping_pong_keeps_viewers_and_drops_silent_ones(stack: RunningStack,
                                                       new_stream: dict[str, Any]) -> None:
    with extra_instance(stack, "fast-ping", NOVA_WS_PING_INTERVAL_S="0.3",
                        NOVA_WS_PONG_TIMEOUT_S="1.5") as base:
        url = ws_url(base, str(new_stream["id"]), stack.minter.mint())
        polite, silent = ViewerProbe(url).connect(), ViewerProbe(url).connect()
        deadline = time.monotonic() + 3.5
        answered = 0
        while time.monotonic() < deadline:
            pings = [f for f in polite.frames if f.event == "ping"]
            for ping in pings[answered:]:
                polite.send("pong", sequence=ping.data["sequence"])
            answered = len(pings)
            time.sleep(0.05)
        sequences = [f.data["sequence"] for f in polite.frames if f.event == "ping"]
        assert sequences[:3] == [1, 2, 3]
        assert silent.closed.is_set() and silent.close_code == 1001
        assert not polite.closed.is_set()
