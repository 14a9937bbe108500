"""Timestamps in the contract's form: RFC 3339, UTC, milliseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


def rfc3339_now() -> str:
    return rfc3339(datetime.now(UTC)) or ""


def utcnow() -> datetime:
    return datetime.now(UTC)
