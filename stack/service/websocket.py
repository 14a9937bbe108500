"""The viewer WebSocket: refusals before the upgrade, then events, pings and requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from stack.service.apierror import ApiError, stream_not_found
from stack.service.clock import utcnow
from stack.service.core import NovaService, duration_seconds, started_data
from stack.service.database import StreamRow
from stack.service.keys import SERVICE
from stack.service.tokens import Principal
from stack.service.viewers import Viewer, frame

log = logging.getLogger("nova.ws")
routes = web.RouteTableDef()

PROTOCOL_VERSION = "1.0"
CLOSE_HANDSHAKE_TIMEOUT_S = 5.0


async def _admit(request: web.Request) -> tuple[Principal, StreamRow]:
    """Checks that answer with an HTTP status instead of an upgrade: 400, 401, 404, 410."""
    svc: NovaService = request.app[SERVICE]
    token = request.query.get("token", "")
    if not token:
        raise ApiError(400, "VALIDATION_ERROR", "query parameter 'token' is required")
    principal = svc.verifier.verify(token)
    try:
        stream_id = uuid.UUID(request.match_info["stream_id"])
    except ValueError:
        # Nova's spec for the socket: 400 "Invalid stream_id or missing token" (the REST
        # routes answer a malformed id as an unknown stream, 404, as that spec lists).
        raise ApiError(400, "VALIDATION_ERROR", "stream_id is not a UUID") from None
    row = await svc.find_stream(stream_id)
    if row is None:
        raise stream_not_found()
    if row.status == "ended":
        raise ApiError(410, "STREAM_ENDED", "stream has ended")
    return principal, row


@routes.get("/api/v1/streams/{stream_id}/ws")
async def viewer_socket(request: web.Request) -> web.WebSocketResponse:
    svc: NovaService = request.app[SERVICE]
    principal, row = await _admit(request)
    # autoping off: protocol-level pings are answered below and count as liveness too. A
    # close waits this long for the client's close frame before the TCP connection goes.
    ws = web.WebSocketResponse(autoping=False, max_msg_size=64 * 1024,
                               timeout=CLOSE_HANDSHAKE_TIMEOUT_S)
    await ws.prepare(request)
    viewer = Viewer(ws=ws, stream_id=str(row.id), viewer_id=principal.user_id)
    await ws.send_str(frame("connection_established", viewer.stream_id, {
        "viewer_id": str(viewer.viewer_id), "session_id": str(viewer.session_id),
        "protocol_version": PROTOCOL_VERSION,
    }))
    if row.status == "active":  # the lifecycle: stream_started follows, "if active"
        await ws.send_str(frame("stream_started", viewer.stream_id, started_data(row)))
    await svc.hub.join(viewer)
    svc.analytics.emit("viewer_joined", viewer.stream_id, str(viewer.viewer_id),
                       str(viewer.session_id))
    svc.spawn(svc.best_effort(svc.db.open_viewer_session(
        row.id, viewer.viewer_id, viewer.session_id, svc.settings.instance_id, utcnow())))
    try:
        await _serve(svc, viewer)
    except ConnectionError:
        pass  # the client went away while we were writing to it
    except Exception:
        # After the upgrade an HTTP 500 would be written into the WebSocket stream and leave
        # the client holding a socket nobody serves: close it with 1011 so it reconnects.
        log.exception("viewer socket of stream %s failed", viewer.stream_id)
        await ws.close(code=1011, message=b"internal error")
    finally:
        await svc.hub.leave(viewer)
        svc.analytics.emit("viewer_left", viewer.stream_id, str(viewer.viewer_id),
                           str(viewer.session_id))
        svc.spawn(svc.best_effort(svc.db.close_viewer_sessions([viewer.session_id], utcnow())))
    return ws


async def _serve(svc: NovaService, viewer: Viewer) -> None:
    """Read the socket until the client closes it or the service asks to close it
    (`Viewer.request_close`): then this task closes it, and waits for the client's answer."""
    ws = viewer.ws
    closing = asyncio.ensure_future(viewer.closing.wait())
    receive: asyncio.Future[WSMessage] | None = None
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            await asyncio.wait({receive, closing}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receive
                await ws.close(code=viewer.close_code, message=viewer.close_message)
                return
            msg = receive.result()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR) or not await _handle(svc, viewer, msg):
                return
    finally:
        closing.cancel()
        if receive is not None and not receive.done():  # cancelled: the service is stopping
            receive.cancel()


async def _handle(svc: NovaService, viewer: Viewer, msg: WSMessage) -> bool:
    """One frame from the client; False when it closed the socket."""
    ws = viewer.ws
    if msg.type == WSMsgType.PING:
        viewer.last_alive_s = _loop_time()
        await ws.pong(msg.data)
    elif msg.type == WSMsgType.PONG:
        viewer.last_alive_s = _loop_time()
    elif msg.type == WSMsgType.TEXT:
        request = _parse(msg.data)
        if request is None:
            await ws.close(code=1003, message=b"frames must be JSON objects with 'event'")
            return False
        await _answer(svc, viewer, request)
    elif msg.type == WSMsgType.BINARY:
        await ws.close(code=1003, message=b"binary frames are not accepted")
        return False
    return True


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return None
    return value


async def _answer(svc: NovaService, viewer: Viewer, request: dict[str, Any]) -> None:
    event = request["event"]
    data = request.get("data")
    if not isinstance(data, dict):
        data = {}
    if event == "pong":
        viewer.last_alive_s = _loop_time()
    elif event == "get_stream_info":
        await viewer.ws.send_str(await _stream_info(svc, viewer, data.get("request_id")))
    elif event == "report_issue":
        # Nova's protocol: issues are logged for quality monitoring; no answer is defined.
        log.info("viewer %s of stream %s reports %s (%s): %.200s", viewer.viewer_id,
                 viewer.stream_id, str(data.get("issue_type", "other"))[:40],
                 str(data.get("severity", "unknown"))[:20], str(data.get("description", "")))
        svc.metrics.viewer_issues.labels(_issue_type(data.get("issue_type"))).inc()
    else:
        await viewer.ws.send_str(frame("error", viewer.stream_id, {
            "error_code": "UNKNOWN_EVENT", "error_message": f"unknown event {event!r}",
            "severity": "warning", "recoverable": True,
        }))


async def _stream_info(svc: NovaService, viewer: Viewer, request_id: Any) -> str:
    try:
        row = await svc.find_stream(uuid.UUID(viewer.stream_id))
    except ApiError:
        return frame("error", viewer.stream_id, {
            "error_code": "SERVICE_UNAVAILABLE", "error_message": "stream info unavailable",
            "severity": "error", "recoverable": True, "request_id": request_id,
        })
    assert row is not None
    viewers, peak = await svc.live.counts(viewer.stream_id)
    return frame("stream_info", viewer.stream_id, {
        "request_id": request_id, "status": row.status, "viewer_count": viewers,
        "peak_viewers": max(peak, row.peak_viewers), "quality": row.quality,
        "bitrate_kbps": row.bitrate_kbps, "fps": row.fps,
        "duration_seconds": duration_seconds(row),
        # The reference keeps no user names: a broadcaster is known by its id (docs/service.md).
        "broadcaster_name": str(row.broadcaster_id),
    })


ISSUE_TYPES = frozenset({"buffering", "lag", "quality", "playback_error", "other"})


def _issue_type(value: Any) -> str:
    """A documented issue type, or `other`: a metric label must not take client text."""
    return value if value in ISSUE_TYPES else "other"
