from __future__ import annotations

import uuid

import pytest

from stack.service.apierror import ApiError
from stack.service.clock import rfc3339
from stack.service.validation import (
    ActiveQuery,
    CreateStream,
    parse_body,
    parse_query,
    parse_stream_id,
)


def test_create_accepts_the_documented_fields() -> None:
    body = parse_body(CreateStream, {"title": "t", "description": "", "region": "us-east-1",
                                     "tags": ["x"] * 10,
                                     "thumbnail_url": "https://cdn.test/a.png"})
    assert body.region == "us-east-1" and len(body.tags) == 10


def test_create_error_names_every_bad_field() -> None:
    with pytest.raises(ApiError) as failure:
        parse_body(CreateStream, {"title": "", "region": "mars", "extra": 1})
    message = failure.value.message
    for field in ("title", "description", "region", "extra"):
        assert field in message
    assert failure.value.status == 400


def test_query_limits() -> None:
    assert parse_query(ActiveQuery, {"limit": "100", "offset": "0"}).limit == 100
    for bad in ({"limit": "0"}, {"limit": "101"}, {"offset": "-1"}, {"region": "x"}):
        with pytest.raises(ApiError):
            parse_query(ActiveQuery, bad)


def test_malformed_stream_id_is_not_found() -> None:
    with pytest.raises(ApiError) as failure:
        parse_stream_id("../etc/passwd")
    assert failure.value.status == 404
    known = uuid.uuid4()
    assert parse_stream_id(str(known)) == known


def test_timestamps_are_rfc3339_ms_utc() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-01-02T01:04:05.678Z"
    assert rfc3339(None) is None


def test_nul_in_text_is_a_validation_error_not_a_database_error() -> None:
    """PostgreSQL text cannot store NUL; found by the security suite (a 500 before)."""
    for body in ({"title": "a\x00b", "description": ""}, {"title": "t", "description": "\x00"},
                 {"title": "t", "description": "", "tags": ["x\x00"]}):
        with pytest.raises(ApiError) as failure:
            parse_body(CreateStream, body)
        assert failure.value.status == 400
    assert parse_body(CreateStream, {"title": "e\u0301 🎥", "description": ""}).title == \
        "e\u0301 🎥"
