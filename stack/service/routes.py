"""REST routes: streams, RTMP webhooks, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from stack.service.apierror import ApiError, bad_request, stream_not_found, unavailable
from stack.service.config import REGIONS
from stack.service.core import NovaService, row_from_cache
from stack.service.database import DatabaseDown, StreamRow
from stack.service.keys import SERVICE
from stack.service.tokens import (
    ANONYMOUS,
    Principal,
    bearer_token,
    require_owner_or_admin,
)
from stack.service.validation import (
    ActiveQuery,
    CreateStream,
    QualityChange,
    parse_body,
    parse_query,
    parse_stream_id,
)

log = logging.getLogger("nova.routes")
routes = web.RouteTableDef()


def service(request: web.Request) -> NovaService:
    return request.app[SERVICE]


async def authenticate(request: web.Request) -> Principal:
    """The bearer token's principal, after the per-user rate limit."""
    svc = service(request)
    if request.match_info.route.handler.__name__ in svc.settings.broken_no_auth_routes:
        return ANONYMOUS  # a deliberately broken test target
    principal = svc.verifier.verify(bearer_token(request.headers.get("Authorization")))
    retry_after_s = await svc.live.hit(f"user:{principal.user_id}", svc.settings.rate_limit_user,
                                       svc.settings.rate_limit_window_s)
    if retry_after_s is not None:
        raise ApiError(429, "RATE_LIMITED", "too many requests for this user",
                       {"Retry-After": str(retry_after_s)})
    return principal


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("request body is not valid JSON") from None


async def load_stream(request: web.Request) -> StreamRow:
    svc = service(request)
    try:
        row = await svc.find_stream(parse_stream_id(request.match_info["stream_id"]))
    except ApiError as exc:
        if exc.status == 404 and svc.settings.broken_unknown_stream_500:
            raise ApiError(500, "INTERNAL_ERROR", "deliberately broken test target") from None
        raise
    if row is None:
        if svc.settings.broken_unknown_stream_500:
            raise ApiError(500, "INTERNAL_ERROR", "deliberately broken test target")
        raise stream_not_found()
    return row


@routes.post("/api/v1/streams")
async def create_stream(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    fields = parse_body(CreateStream, await json_body(request))
    values = fields.model_dump()
    values["thumbnail_url"] = str(fields.thumbnail_url) if fields.thumbnail_url else None
    row = await service(request).create_stream(principal, values)
    return web.json_response(await service(request).stream_json(row, principal), status=201)


@routes.get("/api/v1/streams/active")
async def list_active(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(ActiveQuery, dict(request.query))
    svc = service(request)
    try:
        rows, total = await svc.db.list_active(query.limit, query.offset, query.region)
    except DatabaseDown:
        rows, total = await _active_from_cache(svc, query)
    streams = [await svc.stream_json(row, principal) for row in rows]
    return web.json_response({"streams": streams, "total_count": total,
                              "limit": query.limit, "offset": query.offset})


async def _active_from_cache(svc: NovaService, query: ActiveQuery) -> tuple[list[StreamRow], int]:
    cached = await svc.live.cached_active()
    if cached is None:
        raise unavailable("database")
    rows = [row_from_cache(text) for text in cached]
    rows = [r for r in rows if r.status == "active" and query.region in (None, r.region)]
    rows.sort(key=lambda r: (r.started_at or r.created_at), reverse=True)
    return rows[query.offset: query.offset + query.limit], len(rows)


@routes.get("/api/v1/streams/{stream_id}")
async def get_stream(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await load_stream(request)
    return web.json_response(await service(request).stream_json(row, principal))


@routes.delete("/api/v1/streams/{stream_id}")
async def delete_stream(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await load_stream(request)
    require_owner_or_admin(principal, row.broadcaster_id,
                           skip=service(request).settings.broken_skip_owner_check)
    try:
        await service(request).end_stream(row, "broadcaster_ended")
    except DatabaseDown:
        raise unavailable("database") from None
    return web.Response(status=204)


@routes.post("/api/v1/streams/{stream_id}/quality")
async def change_quality(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await load_stream(request)
    require_owner_or_admin(principal, row.broadcaster_id,
                           skip=service(request).settings.broken_skip_owner_check)
    change = parse_body(QualityChange, await json_body(request))
    svc = service(request)
    try:
        updated = await svc.change_quality(row, change.quality, change.bitrate_kbps, change.fps)
    except DatabaseDown:
        raise unavailable("database") from None
    return web.json_response(await svc.stream_json(updated, principal))


# -- RTMP webhooks (called by nginx-rtmp, form-encoded) ---------------------------------------

FORM_VALUE_MAX = 256  # far beyond a real key or nginx client id


def _form_text(value: object) -> str:
    """A webhook form value the database can hold, or "" (no such key): PostgreSQL text
    cannot hold NUL, and a NUL must be an unknown key, never a 500."""
    text = str(value or "")
    return "" if "\x00" in text or len(text) > FORM_VALUE_MAX else text


async def _publish_form(request: web.Request) -> tuple[str, str]:
    """(stream key, nginx client id) from the webhook form."""
    form = await request.post()
    return _form_text(form.get("name")), _form_text(form.get("clientid"))


@routes.post("/api/v1/streams/auth")
async def rtmp_auth(request: web.Request) -> web.Response:
    started = time.perf_counter()
    key, client_id = await _publish_form(request)
    svc = service(request)
    try:
        row = await svc.activate(key, client_id) if key else None
    except DatabaseDown:
        svc.metrics.broadcast_errors.labels("auth_unavailable").inc()
        raise unavailable("database") from None
    if row is None:
        svc.metrics.broadcast_errors.labels("rejected_key").inc()
        raise ApiError(403, "FORBIDDEN", "unknown stream key or stream already ended")
    log.info("publish allowed for stream %s (client %s)", row.id, client_id)
    svc.metrics.rtmp_ingestion_latency.observe(time.perf_counter() - started)
    return web.json_response({"status": "ok", "stream_id": str(row.id)})


@routes.post("/api/v1/streams/done")
async def rtmp_done(request: web.Request) -> web.Response:
    key, client_id = await _publish_form(request)
    svc = service(request)
    try:
        row = await svc.db.get_stream_by_key(key) if key else None
        if row is None:
            return web.json_response({"status": "ignored"})
        # A refused duplicate publisher also reports done: only the live publisher ends it.
        if row.status == "active" and row.publisher_client_id in (None, "", client_id):
            svc.metrics.broadcast_errors.labels("connection_lost").inc()
            ended = await svc.publisher_lost(row, client_id)
            return web.json_response({"status": "ended" if ended else "grace"})
    except DatabaseDown:
        raise unavailable("database") from None
    return web.json_response({"status": "ignored"})


# -- health and metrics ------------------------------------------------------------------------

async def _check(probe: Any) -> dict[str, Any]:
    try:
        latency_ms = await asyncio.wait_for(probe(), timeout=2.0)
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "latency_ms": round(latency_ms, 2)}


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    svc = service(request)
    database, redis = await asyncio.gather(_check(svc.db.ping_ms), _check(svc.live.ping_ms))
    if database["status"] != "up":
        status, code = "unavailable", 503
    elif redis["status"] != "up" or not svc.live.up:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return web.json_response({
        "status": status, "instance": svc.settings.instance_id,
        "checks": {"database": database, "redis": redis},
        "viewer_sockets": svc.hub.open_sockets,
    }, status=code)


@routes.get("/metrics")
@routes.get("/api/v1/metrics")
async def metrics(request: web.Request) -> web.Response:
    svc = service(request)
    await _refresh_gauges(svc)
    return web.Response(body=svc.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def _refresh_gauges(svc: NovaService) -> None:
    """Fleet-wide gauges are read from the stores at scrape time (best effort when down)."""
    try:
        by_region = await svc.db.count_active_by_region()
        active = await svc.db.active_ids()
    except DatabaseDown:
        return
    for region in REGIONS:
        svc.metrics.active_streams.labels(region).set(by_region.get(region, 0))
    svc.metrics.stream_viewers.clear()
    svc.metrics.quality_bitrate.clear()
    peak = 0
    for row in active:
        viewers, stream_peak = await svc.live.counts(str(row.id))
        svc.metrics.stream_viewers.labels(str(row.id)).set(viewers)
        svc.metrics.quality_bitrate.labels(str(row.id)).set(row.bitrate_kbps)
        peak = max(peak, stream_peak, row.peak_viewers)
    svc.metrics.peak_viewers.set(peak)
    svc.metrics.websocket_connections.set(svc.hub.open_sockets)
