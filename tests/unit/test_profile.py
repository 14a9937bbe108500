"""Both built-in profiles against recorded request/response examples, and profile errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.profile import builtin_names, load_profile
from records.errors import InputError

EXAMPLES = Path(__file__).parent / "examples"


def example(name: str) -> dict[str, object]:
    document: dict[str, object] = json.loads((EXAMPLES / name).read_text())
    return document


def test_builtins() -> None:
    assert builtin_names() == ["nova-doc", "nova-served"]


def test_nova_doc_reads_the_reference_stream() -> None:
    profile = load_profile("nova-doc")
    stream = example("nova-doc-stream.json")
    assert profile.status_of(stream) == "active"
    assert profile.stream_field(stream, "key") == "sk_NRJLPb7BLVbGc10"
    assert profile.stream_field(stream, "viewers") == 7
    assert profile.path("get", "abc") == "/api/v1/streams/abc"
    assert profile.path("list_active") == "/api/v1/streams/active"
    assert profile.ws_url("ws://h:1", "abc", "T") == "ws://h:1/api/v1/streams/abc/ws?token=T"
    assert profile.ws_headers("T") == []
    assert profile.hls_url("http://h:2", "KEY", "abc") == "http://h:2/hls/KEY/index.m3u8"
    assert profile.event_map()["stream_started"] == "stream_started"
    assert profile.create_payload("t", "d", "eu-central-1") == {
        "title": "t", "description": "d", "region": "eu-central-1"}


def test_nova_served_reads_the_served_variant() -> None:
    profile = load_profile("nova-served")
    stream = example("nova-served-stream.json")
    assert profile.status_of(stream) == "active"  # "live" on the wire
    assert profile.stream_field(stream, "id") == "5b0f6c1e-1d7a-4c55-8f0e-6f7b2d7c9a11"
    assert profile.stream_field(stream, "key") == "a1b2c3d4e5"
    assert profile.stream_field(stream, "viewers") == 3
    assert profile.status_of({"status": "preparing"}) == "scheduled"
    listing = example("nova-served-list.json")
    assert [s["stream_id"] for s in profile.streams_of(listing)] == [
        "5b0f6c1e-1d7a-4c55-8f0e-6f7b2d7c9a11"]
    assert profile.listing.paging == "page" and not profile.listing.needs_auth
    assert profile.ws_url("ws://h", "abc", "T") == "ws://h/ws/streams/abc/chat"
    assert profile.ws_headers("T") == ["Authorization: Bearer T"]
    assert profile.event_map() == {}  # chat comments only, no lifecycle events
    assert profile.errors.unknown_stream == 500 and profile.errors.webhook_reject == 401
    assert profile.hls_url("http://h", "KEY", "abc") == "http://h/hls/abc/index.m3u8"
    with pytest.raises(InputError, match="no 'delete' route"):
        profile.path("delete", "abc")


def test_unknown_status_is_visible() -> None:
    assert load_profile("nova-doc").status_of({"status": "paused"}) == "unknown:paused"


def test_user_profile_errors_are_all_reported(tmp_path: Path) -> None:
    document = (Path(__file__).resolve().parents[2] / "harness/config/profiles/nova-doc.yaml")\
        .read_text().replace("auth: query", "auth: cookie").replace(
            "  ping: ping", "  ping: ping\n    dance: dance").replace("  id: id\n", "")
    path = tmp_path / "mine.yaml"
    path.write_text(document)
    with pytest.raises(InputError) as failure:
        load_profile(str(path))
    problems = "\n".join(failure.value.problems)
    assert "ws.auth" in problems and "fields.id" in problems


def test_unknown_profile_name() -> None:
    with pytest.raises(InputError, match="not a built-in profile"):
        load_profile("nova-nope")
