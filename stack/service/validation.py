"""Request bodies and query parameters, validated with pydantic (unknown fields refused)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, ValidationError

from stack.service.apierror import ApiError, bad_request, stream_not_found

Region = Literal["us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1"]
M = TypeVar("M", bound=BaseModel)
# PostgreSQL text cannot hold NUL: refuse it as a validation error, not a database error.
NO_NUL = r"^[^\x00]*$"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=NO_NUL)]


class CreateStream(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_NUL)]
    description: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
    region: Region = "us-west-2"
    tags: Annotated[list[Tag], Field(max_length=10)] = []
    thumbnail_url: HttpUrl | None = None


class QualityChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    quality: Literal["240p", "360p", "480p", "720p", "1080p", "1440p", "2160p"]
    bitrate_kbps: Annotated[int, Field(ge=100, le=100_000)]
    fps: Annotated[int, Field(ge=1, le=120)]


class ActiveQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    # PostgreSQL's OFFSET is a bigint: a larger number is the client's error (400), not the
    # database's (it would raise, and the client would see a 500).
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    region: Region | None = None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_body(model: type[M], payload: Any) -> M:
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise bad_request(_describe(exc)) from None


def parse_query(model: type[M], params: dict[str, str]) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise bad_request(_describe(exc)) from None


def parse_stream_id(raw: str) -> uuid.UUID:
    """A malformed id is an unknown stream (404), per the contract."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise stream_not_found() from None


__all__ = ["ActiveQuery", "ApiError", "CreateStream", "QualityChange", "parse_body",
           "parse_query", "parse_stream_id"]
