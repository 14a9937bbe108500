"""The JSON error body of the contract and the exception that carries it out of handlers."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web


class ApiError(Exception):
    """An error answer: HTTP status, contract error code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def unauthorized(message: str = "missing or invalid bearer token") -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "not allowed for this user") -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


def stream_not_found() -> ApiError:
    return ApiError(404, "STREAM_NOT_FOUND", "stream not found")


def unavailable(dependency: str) -> ApiError:
    return ApiError(503, "SERVICE_UNAVAILABLE", f"{dependency} is unavailable, retry later",
                    {"Retry-After": "1"})


def error_response(
    status: int, code: str, message: str, request_id: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": code, "message": message, "request_id": request_id}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={**(headers or {}), "X-Request-ID": request_id},
    )
