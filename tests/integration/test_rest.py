"""Every REST endpoint and status code of the contract, against the real shared stack."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.support import RunningStack, publish_form

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STREAM_FIELDS = {"id", "broadcaster_id", "title", "description", "status", "region", "tags",
                 "thumbnail_url", "rtmp_url", "viewer_count", "peak_viewers", "duration_seconds",
                 "created_at", "started_at", "ended_at", "hls_playlist_url", "metadata"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "request_id"}
    assert body["error"] == code
    assert uuid.UUID(body["request_id"])
    assert response.headers["X-Request-ID"] == body["request_id"]


def activate(stack: RunningStack, key: str, client_id: str = "7") -> httpx.Response:
    return httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form(key, client_id))


def test_create_returns_the_full_stream(new_stream: dict[str, Any], owner_id: uuid.UUID,
                                        stack: RunningStack) -> None:
    assert STREAM_FIELDS | {"rtmp_key"} == set(new_stream)
    assert new_stream["status"] == "scheduled"
    assert new_stream["broadcaster_id"] == str(owner_id)
    assert new_stream["region"] == "eu-central-1" and new_stream["tags"] == ["a", "b"]
    assert RFC3339_MS.match(new_stream["created_at"])
    assert new_stream["started_at"] is None and new_stream["ended_at"] is None
    assert new_stream["rtmp_url"] == stack.state.endpoints["rtmp_url"]
    assert new_stream["hls_playlist_url"] == (
        f"{stack.state.endpoints['hls_base']}/hls/{new_stream['rtmp_key']}/index.m3u8")
    assert new_stream["metadata"] == {"quality": "720p", "fps": 30, "bitrate_kbps": 2500}


def test_create_defaults_region(api: httpx.Client) -> None:
    body = api.post("/api/v1/streams", json={"title": "t", "description": ""}).json()
    assert body["region"] == "us-west-2" and body["tags"] == []


@pytest.mark.parametrize("payload", [
    {"description": "missing title"},
    {"title": "missing description"},
    {"title": "", "description": "d"},
    {"title": "x" * 256, "description": "d"},
    {"title": "t", "description": "x" * 2001},
    {"title": "t", "description": "d", "region": "mars-1"},
    {"title": "t", "description": "d", "tags": [str(i) for i in range(11)]},
    {"title": "t", "description": "d", "thumbnail_url": "not a url"},
    {"title": "t", "description": "d", "unknown": 1},
    {"title": 5, "description": "d"},
    ["not", "an", "object"],
])
def test_create_rejects_invalid_fields(api: httpx.Client, payload: Any) -> None:
    assert_error(api.post("/api/v1/streams", json=payload), 400, "VALIDATION_ERROR")


def test_create_rejects_malformed_json(api: httpx.Client) -> None:
    response = api.post("/api/v1/streams", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert_error(response, 400, "VALIDATION_ERROR")


def test_get_stream_hides_key_from_other_users(stack: RunningStack,
                                               new_stream: dict[str, Any]) -> None:
    with stack.client(stack.minter.mint()) as other:
        body = other.get(f"/api/v1/streams/{new_stream['id']}").json()
    assert body["id"] == new_stream["id"] and "rtmp_key" not in body
    with stack.client(stack.minter.mint(admin=True)) as admin:
        assert admin.get(f"/api/v1/streams/{new_stream['id']}").json()["rtmp_key"] == \
            new_stream["rtmp_key"]


@pytest.mark.parametrize("stream_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_stream_is_404(api: httpx.Client, stream_id: str) -> None:
    assert_error(api.get(f"/api/v1/streams/{stream_id}"), 404, "STREAM_NOT_FOUND")
    assert_error(api.delete(f"/api/v1/streams/{stream_id}"), 404, "STREAM_NOT_FOUND")


def test_active_list_holds_only_active_streams(stack: RunningStack, api: httpx.Client,
                                               new_stream: dict[str, Any]) -> None:
    def ids(body: dict[str, Any]) -> set[str]:
        return {s["id"] for s in body["streams"]}

    assert new_stream["id"] not in ids(api.get("/api/v1/streams/active?limit=100").json())
    assert activate(stack, new_stream["rtmp_key"]).status_code == 200
    body = api.get("/api/v1/streams/active", params={"limit": 100}).json()
    assert new_stream["id"] in ids(body)
    assert body["limit"] == 100 and body["offset"] == 0 and body["total_count"] >= 1
    other_region = api.get("/api/v1/streams/active", params={"region": "us-east-1",
                                                             "limit": 100}).json()
    assert new_stream["id"] not in ids(other_region)
    one = api.get("/api/v1/streams/active", params={"limit": 1}).json()
    assert len(one["streams"]) == 1 and one["total_count"] == body["total_count"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x",
                                   "region=nowhere"])
def test_active_list_rejects_bad_paging(api: httpx.Client, query: str) -> None:
    assert_error(api.get(f"/api/v1/streams/active?{query}"), 400, "VALIDATION_ERROR")


def test_delete_by_owner_ends_the_stream(api: httpx.Client, new_stream: dict[str, Any]) -> None:
    assert api.delete(f"/api/v1/streams/{new_stream['id']}").status_code == 204
    body = api.get(f"/api/v1/streams/{new_stream['id']}").json()
    assert body["status"] == "ended" and RFC3339_MS.match(body["ended_at"])


def test_delete_by_another_user_is_403_and_admin_may(stack: RunningStack,
                                                     new_stream: dict[str, Any]) -> None:
    with stack.client(stack.minter.mint()) as other:
        assert_error(other.delete(f"/api/v1/streams/{new_stream['id']}"), 403, "FORBIDDEN")
    with stack.client(stack.minter.mint(admin=True)) as admin:
        assert admin.delete(f"/api/v1/streams/{new_stream['id']}").status_code == 204
        assert admin.get(f"/api/v1/streams/{new_stream['id']}").json()["status"] == "ended"


def test_quality_change_by_owner_only(stack: RunningStack, api: httpx.Client,
                                      new_stream: dict[str, Any]) -> None:
    change = {"quality": "1080p", "bitrate_kbps": 6000, "fps": 60}
    with stack.client(stack.minter.mint()) as other:
        assert_error(other.post(f"/api/v1/streams/{new_stream['id']}/quality", json=change),
                     403, "FORBIDDEN")
    response = api.post(f"/api/v1/streams/{new_stream['id']}/quality", json=change)
    assert response.status_code == 200
    assert response.json()["metadata"] == {"quality": "1080p", "fps": 60, "bitrate_kbps": 6000}


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/streams"), ("GET", "/api/v1/streams/active"),
    ("GET", f"/api/v1/streams/{uuid.uuid4()}"), ("DELETE", f"/api/v1/streams/{uuid.uuid4()}"),
    ("POST", f"/api/v1/streams/{uuid.uuid4()}/quality"),
])
@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer not.a.jwt"])
def test_routes_need_a_valid_token(stack: RunningStack, method: str, path: str,
                                   header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.request(method, f"{stack.api}{path}", headers=headers, json={})
    assert_error(response, 401, "UNAUTHORIZED")


def test_publish_webhook_lifecycle(stack: RunningStack, api: httpx.Client,
                                   new_stream: dict[str, Any]) -> None:
    key = new_stream["rtmp_key"]
    unknown = httpx.post(f"{stack.api}/api/v1/streams/auth", data=publish_form("sk_unknown"))
    assert_error(unknown, 403, "FORBIDDEN")
    assert activate(stack, key, "11").status_code == 200
    body = api.get(f"/api/v1/streams/{new_stream['id']}").json()
    assert body["status"] == "active" and RFC3339_MS.match(body["started_at"])
    assert activate(stack, key, "12").status_code == 200  # reconnect of a live stream
    # A refused duplicate publisher's done must not end the stream.
    httpx.post(f"{stack.api}/api/v1/streams/done", data=publish_form(key, "12"))
    assert api.get(f"/api/v1/streams/{new_stream['id']}").json()["status"] == "active"
    httpx.post(f"{stack.api}/api/v1/streams/done", data=publish_form(key, "11"))
    assert api.get(f"/api/v1/streams/{new_stream['id']}").json()["status"] == "ended"
    assert_error(activate(stack, key, "13"), 403, "FORBIDDEN")  # an ended stream stays ended


def test_health_reports_each_dependency(stack: RunningStack) -> None:
    body = httpx.get(f"{stack.api}/health").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["redis"]["status"] == "up"


def test_metrics_are_prometheus_text_with_nova_series(stack: RunningStack, api: httpx.Client,
                                                      new_stream: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    activate(stack, new_stream["rtmp_key"])
    for path in ("/metrics", "/api/v1/metrics"):
        response = httpx.get(f"{stack.api}{path}")
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        for name in ("nova_streaming_active_streams", "nova_streaming_websocket_connections",
                     "nova_streaming_peak_viewers", "nova_streaming_viewers_total",
                     "nova_streaming_stream_duration_seconds",
                     "nova_streaming_broadcast_errors", "nova_streaming_http_requests",
                     "nova_streaming_http_request_duration_seconds",
                     "process_resident_memory_bytes"):
            assert name in families, name
        active = {s.labels["region"]: s.value
                  for s in families["nova_streaming_active_streams"].samples}
        assert active["eu-central-1"] >= 1


def test_cors_preflight(stack: RunningStack) -> None:
    response = httpx.options(f"{stack.api}/api/v1/streams", headers={
        "Origin": "https://example.test", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
