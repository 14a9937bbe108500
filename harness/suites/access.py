"""Checklist §18, access control: a user cannot see another user's stream key nor end or change
another user's stream; an admin can list every active stream, force-end any stream, and read
the metrics."""

from __future__ import annotations

import json
from typing import Any

from harness.suites.actions import active_ids, publishing
from harness.suites.base import Session, check, expect, expect_status

QUALITY_CHANGE = {"quality": "480p", "bitrate_kbps": 1200, "fps": 30}


def _owned(s: Session) -> tuple[str, dict[str, Any], str]:
    """(owner token, the owner's stream, its id)."""
    _, owner = s.user()
    stream = s.create_stream(owner, "access-control stream")
    return owner, stream, s.stream_id(stream)


def _status(s: Session, stream_id: str, token: str) -> str:
    response = s.request("GET", s.target.profile.path("get", stream_id), token=token)
    expect_status(response, 200, "read the stream back")
    return s.target.profile.status_of(response.json())


@check("access", "key-hidden-from-others", "§18 a user cannot read another user's stream key")
def key_hidden(s: Session) -> str:
    _, stream, stream_id = _owned(s)
    key = str(s.target.profile.stream_field(stream, "key"))
    expect(bool(key) and key != "None", "the owner's create response has no stream key")
    _, other = s.user()
    response = s.request("GET", s.target.profile.path("get", stream_id), token=other)
    expect(response.status_code in (200, 403, 404), f"HTTP {response.status_code}")
    if response.status_code != 200:
        return f"another user gets HTTP {response.status_code}"
    body = response.json()
    key_field = s.target.profile.fields.key
    expect(key_field not in body, f"another user's read includes `{key_field}`")
    # The contract builds the HLS URL from the key (section 3), so it is public by design;
    # anywhere else it is a leak.
    elsewhere = [name for name, value in body.items() if key in json.dumps(value)
                 and name != s.target.profile.fields.hls_url]
    expect(not elsewhere, f"the key appears in {elsewhere}")
    derived = key in str(body.get(s.target.profile.fields.hls_url, ""))
    return (f"`{key_field}` absent for another user"
            + ("; the key is part of the HLS URL, as the contract's section 3 defines it"
               if derived else ""))


@check("access", "others-cannot-end", "§18 a user cannot end another user's stream")
def others_cannot_end(s: Session) -> str:
    owner, _, stream_id = _owned(s)
    _, other = s.user()
    response = s.request("DELETE", s.target.profile.path("delete", stream_id), token=other)
    expect_status(response, s.target.profile.errors.forbidden, "DELETE by another user")
    status = _status(s, stream_id, owner)
    expect(status != "ended", "the stream ended anyway")
    return f"HTTP {response.status_code}; the stream is still {status}"


@check("access", "others-cannot-modify", "§18 a user cannot modify another user's stream")
def others_cannot_modify(s: Session) -> str:
    _, _, stream_id = _owned(s)
    _, other = s.user()
    path = s.target.profile.path("get", stream_id) + "/quality"
    response = s.request("POST", path, token=other, json=QUALITY_CHANGE)
    expect_status(response, s.target.profile.errors.forbidden, "quality change by another user")
    return f"HTTP {response.status_code}"


def _ended_by(s: Session, admin: bool) -> str:
    """DELETE a fresh stream as its owner or as an admin; it must end."""
    owner, _, stream_id = _owned(s)
    who, token = ("an admin", s.user(admin=True)[1]) if admin else ("the owner", owner)
    response = s.request("DELETE", s.target.profile.path("delete", stream_id), token=token)
    expect(response.status_code in (200, 204), f"DELETE by {who}: HTTP {response.status_code}")
    expect(_status(s, stream_id, owner) == "ended", "the stream did not end")
    return f"HTTP {response.status_code}; status ended"


@check("access", "owner-can-end", "§18 the owner can end their own stream")
def owner_can_end(s: Session) -> str:
    return _ended_by(s, admin=False)


@check("access", "admin-force-end", "§18 an admin can force-end any stream")
def admin_force_end(s: Session) -> str:
    return _ended_by(s, admin=True)


@check("access", "admin-sees-keys", "§18 an admin can read any stream's key")
def admin_sees_keys(s: Session) -> str:
    _, stream, stream_id = _owned(s)
    _, admin = s.user(admin=True)
    response = s.request("GET", s.target.profile.path("get", stream_id), token=admin)
    expect_status(response, 200, "read by an admin")
    key = s.target.profile.stream_field(response.json(), "key")
    expect(key == s.target.profile.stream_field(stream, "key"), "the admin's read has no key")
    return "the admin's read includes the key"


@check("access", "admin-lists-all", "§18 an admin can list all active streams")
def admin_lists_all(s: Session) -> str:
    _, _, stream_id = _owned(s)
    with publishing(s, stream_id):
        _, admin = s.user(admin=True)
        listed = active_ids(s, admin)
    expect(stream_id in listed, "another user's active stream is missing from the admin's list")
    return f"another user's live stream is among the {len(listed)} active streams listed"


@check("access", "admin-reads-metrics", "§18 an admin can read the metrics")
def admin_reads_metrics(s: Session) -> str:
    _, admin = s.user(admin=True)
    response = s.request("GET", "/api/v1/metrics", token=admin)
    expect_status(response, 200, "metrics read by an admin")
    expect("nova_streaming_" in response.text, "no nova_streaming_ series in the answer")
    return "HTTP 200 with nova_streaming_* series"
