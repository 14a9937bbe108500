"""Where the reference service departed from Nova's documented contract (Nova's
docs/openapi-streaming.yaml and docs/websocket-protocol.md; the contract issue lists them):
each case as a client meets it, on the shared stack."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websocket

from harness.suites.viewer_probe import ViewerProbe
from tests.integration.test_rest import assert_error
from tests.integration.test_websocket import ws_url
from tests.support import RunningStack, publish_form, wait_for


def activate(stack: RunningStack, key: str) -> None:
    """The publish webhook nginx-rtmp calls: the stream goes live without ffmpeg."""
    assert httpx.post(f"{stack.api}/api/v1/streams/auth",
                      data=publish_form(key)).status_code == 200


@pytest.mark.parametrize("offset", ["97419417033631897601880096768", str(2**63)])
def test_an_offset_beyond_the_databases_range_is_a_400(api: httpx.Client, offset: str) -> None:
    assert_error(api.get("/api/v1/streams/active", params={"offset": offset}), 400,
                 "VALIDATION_ERROR")


def test_the_largest_offset_the_database_takes_is_an_empty_page(api: httpx.Client) -> None:
    body = api.get("/api/v1/streams/active", params={"offset": str(2**63 - 1)}).json()
    assert body["streams"] == [] and body["offset"] == 2**63 - 1


@pytest.mark.parametrize("form", [{"name": "key\x00", "clientid": "1"},
                                  {"name": "k" * 5000, "clientid": "1"}])
def test_a_webhook_key_the_database_cannot_hold_is_an_unknown_key(stack: RunningStack,
                                                                   form: dict[str, str]) -> None:
    """A NUL in the key used to reach PostgreSQL and answer 500 on both webhooks."""
    assert_error(httpx.post(f"{stack.api}/api/v1/streams/auth", data=form), 403, "FORBIDDEN")
    done = httpx.post(f"{stack.api}/api/v1/streams/done", data=form)
    assert done.status_code == 200 and done.json() == {"status": "ignored"}


def test_a_client_id_the_database_cannot_hold_does_not_stop_a_publish(
        stack: RunningStack, new_stream: dict[str, Any]) -> None:
    form = publish_form(str(new_stream["rtmp_key"]), client_id="7\x00")
    response = httpx.post(f"{stack.api}/api/v1/streams/auth", data=form)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("TRACE", "/api/v1/streams/active", {"GET"}),
    ("GET", "/api/v1/streams", {"POST"}),
])
def test_an_undeclared_method_is_405_with_allow(stack: RunningStack, method: str, path: str,
                                                allowed: set[str]) -> None:
    response = httpx.request(method, stack.api + path,
                             headers={"Authorization": f"Bearer {stack.minter.mint()}"})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_late_joiner_gets_stream_started_and_whole_second_durations(
        stack: RunningStack, api: httpx.Client, new_stream: dict[str, Any]) -> None:
    sid = str(new_stream["id"])
    activate(stack, str(new_stream["rtmp_key"]))
    viewer = ViewerProbe(ws_url(stack.api, sid, stack.minter.mint())).connect()
    try:
        assert viewer.wait_for("stream_started") is not None
        assert viewer.events()[:2] == ["connection_established", "stream_started"]
        assert viewer.frames[1].data["title"] == new_stream["title"]
        viewer.send("get_stream_info", request_id="r-1")
        info = viewer.wait_for("stream_info")
        assert info is not None and info.data["request_id"] == "r-1"
        assert info.data["broadcaster_name"] == new_stream["broadcaster_id"]
        assert isinstance(info.data["duration_seconds"], int)
        assert wait_for(lambda: api.get(f"/api/v1/streams/{sid}").json()[
            "duration_seconds"] >= 1, 5.0)
        assert isinstance(api.get(f"/api/v1/streams/{sid}").json()["duration_seconds"], int)
        api.post(f"/api/v1/streams/{sid}/quality",
                 json={"quality": "480p", "bitrate_kbps": 1200, "fps": 25})
        quality = viewer.wait_for("quality_changed")
        assert quality is not None and quality.data["reason"] == "broadcaster_changed"
        assert api.delete(f"/api/v1/streams/{sid}").status_code == 204
        ended = viewer.wait_for("stream_ended")
        assert ended is not None and isinstance(ended.data["duration_seconds"], int)
        assert ended.data["duration_seconds"] >= 1
    finally:
        viewer.close()


def test_a_viewer_joining_before_the_start_gets_no_early_stream_started(
        stack: RunningStack, new_stream: dict[str, Any]) -> None:
    viewer = ViewerProbe(ws_url(stack.api, str(new_stream["id"]),
                                stack.minter.mint())).connect()
    try:
        assert viewer.wait_for("viewer_count_changed") is not None
        assert "stream_started" not in viewer.events()
    finally:
        viewer.close()


def test_report_issue_is_accepted_and_counted(stack: RunningStack,
                                             new_stream: dict[str, Any]) -> None:
    def reported(issue_type: str) -> float:
        """The counter summed over every service instance (each counts its own sockets)."""
        series = f'nova_streaming_viewer_issues_total{{issue_type="{issue_type}"}} '
        return sum(float(line.rsplit(" ", 1)[1]) for line in instance_metrics(stack)
                   if line.startswith(series))

    before = {kind: reported(kind) for kind in ("buffering", "other")}
    viewer = ViewerProbe(ws_url(stack.api, str(new_stream["id"]), stack.minter.mint())).connect()
    try:
        assert viewer.wait_for("connection_established") is not None
        viewer.send("report_issue", issue_type="buffering", severity="high",
                    description="constantly buffering", client_info={"player": "probe"})
        viewer.send("report_issue", issue_type="<script>", severity="low")  # counted as other
        viewer.send("get_stream_info", request_id="after")
        assert viewer.wait_for("stream_info") is not None
        assert "error" not in viewer.events(), [f.data for f in viewer.frames]
    finally:
        viewer.close()
    assert reported("buffering") == before["buffering"] + 1
    assert reported("other") == before["other"] + 1


def instance_metrics(stack: RunningStack) -> list[str]:
    """Every service instance's /metrics lines (counters and histograms are per instance)."""
    lines: list[str] = []
    for name, role in stack.state.roles.items():
        if name.startswith("api-") and role.port:
            lines += httpx.get(f"http://127.0.0.1:{role.port}/metrics").text.splitlines()
    return lines


def test_the_two_metrics_novas_spec_names_are_exported(stack: RunningStack, api: httpx.Client,
                                                       new_stream: dict[str, Any]) -> None:
    def activations() -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in instance_metrics(stack)
                   if line.startswith("nova_streaming_rtmp_ingestion_latency_seconds_count"))

    before = activations()
    sid = str(new_stream["id"])
    activate(stack, str(new_stream["rtmp_key"]))
    assert activations() == before + 1
    gauge = f'nova_streaming_quality_bitrate_kbps{{stream_id="{sid}"}} '
    lines = httpx.get(f"{stack.api}/metrics").text.splitlines()
    assert [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(gauge)] == [2500.0]
    api.delete(f"/api/v1/streams/{sid}")
    lines = httpx.get(f"{stack.api}/metrics").text.splitlines()
    assert not any(line.startswith(gauge) for line in lines), "an ended stream has no bitrate"


def test_after_stream_ended_the_server_waits_for_the_clients_close(
        stack: RunningStack, api: httpx.Client, new_stream: dict[str, Any]) -> None:
    """RFC 6455 §7.1.1: the server sends its close frame, then waits for the client's before it
    closes TCP. (It used to drop TCP at once: browsers saw `wasClean: false` and reconnected
    to an ended stream.)"""
    sid = str(new_stream["id"])
    client = websocket.create_connection(ws_url(stack.api, sid, stack.minter.mint()), timeout=5)
    raw = client.sock
    assert raw is not None
    try:
        assert api.delete(f"/api/v1/streams/{sid}").status_code == 204
        events = []
        # recv_frame: frames as they come, without the library's automatic close reply.
        while (frame := client.recv_frame()).opcode != websocket.ABNF.OPCODE_CLOSE:  # type: ignore[no-untyped-call]
            events.append(json.loads(frame.data)["event"])
        assert events[-1] == "stream_ended" and int.from_bytes(frame.data[:2], "big") == 1000
        raw.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no EOF: the server holds on for our close
            raw.recv(1)
        raw.settimeout(5)
        client.send_close()
        assert raw.recv(1) == b"", "the server closes TCP once it has our close"
    finally:
        raw.close()
