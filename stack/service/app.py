"""The aiohttp application: middleware (request id, errors, CORS, rate limit, HTTP metrics)
and the wiring of routes to one NovaService."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from stack.service import routes, websocket
from stack.service.apierror import ApiError, error_response
from stack.service.config import Settings
from stack.service.core import NovaService
from stack.service.keys import SERVICE

log = logging.getLogger("nova.app")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_UNLIMITED = ("/api/v1/streams/auth", "/api/v1/streams/done")


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _cors_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    if origin is None:
        return {}
    if "*" in settings.cors_origins:
        allowed = "*"
    elif origin in settings.cors_origins:
        allowed = origin
    else:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-ID",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


@web.middleware
async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, CORS, per-IP rate limit, the JSON error body, and HTTP metrics."""
    svc = request.app[SERVICE]
    request_id = str(uuid.uuid4())
    started = time.perf_counter()
    cors = _cors_headers(svc.settings, request.headers.get("Origin"))
    try:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204 if cors else 403)
        else:
            await _limit_ip(request)
            response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, request_id, exc.headers)
    except web.HTTPException as exc:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status, "HTTP_ERROR")
        # A 405 names the methods the resource has (RFC 9110 §15.5.6: Allow is required).
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = error_response(exc.status, code, exc.reason, request_id, allow)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(500, "INTERNAL_ERROR", "internal error", request_id)
    if not response.prepared:  # a WebSocket has sent its headers already
        response.headers.update(cors)
        response.headers.setdefault("X-Request-ID", request_id)
    route = _route_name(request)
    svc.metrics.http_requests.labels(request.method, route, str(response.status)).inc()
    svc.metrics.http_latency.labels(request.method, route).observe(time.perf_counter() - started)
    return response


async def _limit_ip(request: web.Request) -> None:
    if not request.path.startswith("/api/v1/streams") or request.path in _UNLIMITED:
        return
    svc = request.app[SERVICE]
    # The peer address, not X-Forwarded-For: a client-set header must not reset its limit
    # (trusting it is a deliberately broken test target).
    address = request.remote
    if svc.settings.broken_trust_forwarded_for and request.headers.get("X-Forwarded-For"):
        address = request.headers["X-Forwarded-For"].split(",")[0].strip()
    retry_after_s = await svc.live.hit(f"ip:{address}", svc.settings.rate_limit_ip,
                                       svc.settings.rate_limit_window_s)
    if retry_after_s is not None:
        raise ApiError(429, "RATE_LIMITED", "too many requests from this address",
                       {"Retry-After": str(retry_after_s)})


def create_app(settings: Settings) -> web.Application:
    """The service as an aiohttp Application; the NovaService starts with the app."""
    app = web.Application(middlewares=[front_door], client_max_size=256 * 1024)
    app[SERVICE] = NovaService(settings)
    app.add_routes(websocket.routes)
    app.add_routes(routes.routes)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[SERVICE].start()
        yield
        await app[SERVICE].close()

    async def going_away(app: web.Application) -> None:
        app[SERVICE].hub.going_away()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(going_away)  # before the server waits for open handlers
    return app
