"""Checklist §9, API workflow: create → get → list active → delete with field-by-field checks;
the RTMP broadcast lifecycle; the viewer socket's counts, quality changes, lifecycle events and
keepalive; and the documented error answers."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any

from harness.errors import CheckSkipped
from harness.suites.actions import (
    active_ids,
    publisher_for,
    publishing,
    read_stream,
    stream_key,
    viewer,
    wait_status,
)
from harness.suites.base import LOW_LIMITS_HINT, Session, check, expect, expect_status

RFC3339_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CLOCK_TOLERANCE_S = 5.0
RATE_LIMIT_BUDGET = 300
REJECTED_WITHIN_S = 5.0


def _fields(s: Session, body: dict[str, Any]) -> dict[str, Any]:
    """The Stream in the contract's words (profile field names → contract names)."""
    names = s.target.profile.fields.model_dump()
    return {contract: body.get(wire) for contract, wire in names.items()}


def _recent(stamp: Any) -> bool:
    if not isinstance(stamp, str) or not RFC3339_MS_Z.match(stamp):
        return False
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return abs(when - time.time()) < CLOCK_TOLERANCE_S


@check("api", "create-fields", "§9 POST /streams: 201 and every field as documented")
def create_fields(s: Session) -> str:
    _, token = s.user()
    body = _fields(s, s.create_stream(token, "api workflow stream"))
    problems = []
    try:
        uuid.UUID(str(body["id"]))
    except ValueError:
        problems.append(f"id {body['id']!r} is not a UUID")
    expected = {"title": "api workflow stream", "description": "created by nova-harness check",
                "region": "us-west-2", "viewers": 0, "started_at": None, "ended_at": None}
    problems += [f"{k}: {body[k]!r}, expected {v!r}" for k, v in expected.items()
                 if body[k] != v]
    if s.target.profile.status_of({s.target.profile.fields.status: body["status"]}) != \
            "scheduled":
        problems.append(f"status {body['status']!r}, expected scheduled")
    if not _recent(body["created_at"]):
        problems.append(f"created_at {body['created_at']!r} is not RFC 3339 ms Z and now")
    if not body["key"] or not str(body["hls_url"] or "").endswith(".m3u8"):
        problems.append("stream key or HLS playlist URL missing")
    expect(not problems, "; ".join(problems))
    return "201; id, title, description, region, status, counts, timestamps, key, HLS URL ok"


@check("api", "get-matches-create", "§9 GET /streams/{id} returns what was created")
def get_matches_create(s: Session) -> str:
    _, token = s.user()
    created = s.create_stream(token, "api get stream")
    response = s.request("GET", s.target.profile.path("get", s.stream_id(created)), token=token)
    expect_status(response, 200, "get")
    differing = [k for k in ("id", "title", "description", "region", "status", "key",
                             "created_at", "hls_url")
                 if _fields(s, response.json())[k] != _fields(s, created)[k]]
    expect(not differing, f"fields differ from the create answer: {differing}")
    return "200, every field as created"


@check("api", "list-active", "§9 GET active streams lists a live stream and only live ones")
def list_active(s: Session) -> str:
    _, token = s.user()
    live, idle = (s.stream_id(s.create_stream(token, t)) for t in ("live", "idle"))
    with publishing(s, live):
        listed = active_ids(s, token)
    expect(live in listed, "the live stream is not listed as active")
    expect(idle not in listed, "a scheduled stream is listed as active")
    return f"live stream listed, scheduled one not ({len(listed)} active)"


@check("api", "delete-ends", "§9 DELETE ends the stream: 204, status ended, ended_at set")
def delete_ends(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "api delete stream"))
    response = s.request("DELETE", s.target.profile.path("delete", stream_id), token=token)
    expect_status(response, 204, "delete")
    body = _fields(s, read_stream(s, stream_id))
    expect(s.target.profile.status_of({s.target.profile.fields.status: body["status"]}) ==
           "ended", f"status {body['status']!r} after delete")
    expect(_recent(body["ended_at"]), f"ended_at {body['ended_at']!r} is not now")
    return "204; status ended, ended_at set"


@check("api", "rtmp-lifecycle",
       "§9 RTMP: stream active on publish with no API call, ended when ffmpeg stops")
def rtmp_lifecycle(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "rtmp lifecycle"))
    probe = viewer(s, stream_id)
    try:
        with publisher_for(s, stream_key(s, stream_id)) as publisher:
            active_s = wait_status(s, stream_id, "active", 10.0, publisher)
            expect(probe.wait_for("stream_started", 5.0) is not None,
                   "the viewer got no stream_started")
            publisher.stop()
            ended_s = wait_status(s, stream_id, "ended", 10.0)
        ended = probe.wait_for("stream_ended", 5.0)
    finally:
        probe.close()
    expect(ended is not None, "the viewer got no stream_ended")
    assert ended is not None
    expect(ended.data.get("reason") == "connection_lost",
           f"stream_ended reason {ended.data.get('reason')!r}, expected connection_lost")
    return f"active {active_s:.1f} s after the publish, ended {ended_s:.1f} s after ffmpeg " \
           "stopped (reason connection_lost)"


def _publish_refused(s: Session, key: str) -> float:
    """Seconds until ffmpeg gave up on a publish the target should refuse."""
    with publisher_for(s, key) as publisher:
        started = time.monotonic()
        while publisher.running:
            expect(time.monotonic() - started < REJECTED_WITHIN_S,
                   f"the publish was still running after {REJECTED_WITHIN_S:g} s")
            time.sleep(0.05)
        expect(publisher.exit_code() != 0, "ffmpeg exited 0: the publish was accepted")
        return time.monotonic() - started


@check("api", "rtmp-errors", "§9 RTMP errors surface: unknown key and ended stream refused")
def rtmp_errors(s: Session) -> str:
    unknown_s = _publish_refused(s, f"sk_unknown_{uuid.uuid4().hex}")
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "ended stream"))
    key = stream_key(s, stream_id)
    s.request("DELETE", s.target.profile.path("delete", stream_id), token=token)
    ended_s = _publish_refused(s, key)
    return f"unknown key refused in {unknown_s:.2f} s, ended stream's key in {ended_s:.2f} s"


def _last_count(probe: Any, after: int = 0, timeout_s: float = 3.0) -> int | None:
    """The viewer count in the newest viewer_count_changed once counts stop arriving."""
    deadline = time.monotonic() + timeout_s
    count = None
    while time.monotonic() < deadline:
        frames = [f for f in probe.frames[after:] if f.event == "viewer_count_changed"]
        if frames:
            count = int(frames[-1].data.get("viewer_count", -1))
        time.sleep(0.3)
    return count


@check("api", "ws-counts", "§9 WS: viewer counts follow joins and leaves")
def ws_counts(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "counts"))
    first = viewer(s, stream_id)
    others = [viewer(s, stream_id) for _ in range(2)]
    try:
        joined = _last_count(first)
        mark = len(first.frames)
        others.pop().close()
        left = _last_count(first, mark)
    finally:
        for probe in [first, *others]:
            probe.close()
    expect(joined == 3, f"after 3 joins the count told was {joined}")
    expect(left == 2, f"after a leave the count told was {left}")
    return "3 after three joins, 2 after one leave"


@check("api", "ws-quality", "§9 WS: a quality change reaches the viewers")
def ws_quality(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "quality"))
    probe = viewer(s, stream_id)
    try:
        response = s.request("POST", s.target.profile.path("get", stream_id) + "/quality",
                             token=token, json={"quality": "480p", "bitrate_kbps": 1200,
                                                "fps": 25})
        expect(response.status_code == 200, f"quality change: HTTP {response.status_code}")
        changed = probe.wait_for("quality_changed", 5.0)
    finally:
        probe.close()
    expect(changed is not None, "no quality_changed within 5 s")
    assert changed is not None
    got = {k: changed.data.get(k) for k in ("new_quality", "new_bitrate_kbps", "fps")}
    expect(got == {"new_quality": "480p", "new_bitrate_kbps": 1200, "fps": 25},
           f"quality_changed carried {got}")
    return "quality_changed with 480p, 1200 kbps, 25 fps"


@check("api", "ws-lifecycle", "§9 WS: connection_established, stream_started, stream_ended, "
                              "then close 1000")
def ws_lifecycle(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "lifecycle"))
    probe = viewer(s, stream_id)
    try:
        with publishing(s, stream_id):
            expect(probe.wait_for("stream_started", 5.0) is not None, "no stream_started")
            s.request("DELETE", s.target.profile.path("delete", stream_id), token=token)
            ended = probe.wait_for("stream_ended", 5.0)
        probe.closed.wait(5.0)
    finally:
        probe.close()
    events = [e for e in probe.events() if e != "viewer_count_changed"]
    expect(ended is not None, f"no stream_ended (events: {events})")
    expect(events[:1] == ["connection_established"], f"first event {events[:1]}")
    expect(probe.close_code == 1000, f"closed with {probe.close_code}, expected 1000")
    return f"events {events}, closed 1000"


@check("api", "ws-keepalive", "§9 WS: ping/pong keeps the socket alive")
def ws_keepalive(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token, "keepalive"))
    probe = viewer(s, stream_id)
    try:
        expect(probe.ping(b"nova-check"), "no pong to a protocol ping within 5 s")
        probe.send("pong", sequence=0)  # the JSON keepalive answer is accepted
        probe.send("get_stream_info", request_id="keepalive")
        info = probe.wait_for("stream_info", 5.0)
    finally:
        probe.close()
    expect(info is not None and info.data.get("request_id") == "keepalive",
           "no stream_info after the pong: the socket did not stay usable")
    return "protocol ping answered; JSON pong accepted, socket still answering"


@check("api", "error-unknown-stream", "§9 errors: unknown or malformed stream id → 404")
def error_unknown(s: Session) -> str:
    _, token = s.user()
    wanted = s.target.profile.errors.unknown_stream
    for stream_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = s.request("GET", s.target.profile.path("get", stream_id), token=token)
        expect_status(response, wanted, f"stream {stream_id}")
    return f"HTTP {wanted} for a random UUID and a malformed id"


@check("api", "error-no-token", "§9 errors: no token → 401")
def error_no_token(s: Session) -> str:
    response = s.request("POST", s.target.profile.path("create"),
                         json=s.target.profile.create_payload("t", "d", "us-west-2"))
    expect_status(response, s.target.profile.errors.no_token, "create without a token")
    return f"HTTP {response.status_code}"


@check("api", "error-malformed-json", "§9 errors: malformed JSON → 400")
def error_malformed_json(s: Session) -> str:
    _, token = s.user()
    response = s.request("POST", s.target.profile.path("create"), token=token,
                         content=b'{"title": "x", ', headers={"Content-Type": "application/json"})
    expect_status(response, s.target.profile.errors.invalid_body, "malformed JSON")
    return f"HTTP {response.status_code}"


@check("api", "error-rate-limit", "§9 errors: rate limit → 429 with Retry-After")
def error_rate_limit(s: Session) -> str:
    _, token = s.user()
    path, started = s.target.profile.path("list_active"), time.perf_counter()
    for sent in range(1, RATE_LIMIT_BUDGET + 1):
        # Not each recorded as evidence: one line for the burst.
        response = s.client.get(path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == s.target.profile.errors.rate_limited:
            s.note(f"GET {path}, {sent} times", response.status_code, response.text, started)
            expect("Retry-After" in response.headers, "429 without Retry-After")
            return f"429 after {sent} requests, Retry-After {response.headers['Retry-After']} s"
    raise CheckSkipped(f"no 429 within {RATE_LIMIT_BUDGET} requests: the target's limit is "
                       f"higher ({LOW_LIMITS_HINT})")
