"""A deliberately non-conforming Nova target for the contract suite's tests: an aiohttp proxy in
front of the reference stack that re-creates five defects the contract issue found, and passes
everything else through unchanged:

1. an offset beyond int64 → 500 (the database's error, not a 400);
2. a viewer joining a live stream gets no stream_started;
4. duration_seconds is a decimal in Stream objects and socket frames;
8. after stream_ended the proxy drops TCP right after its close frame (no close handshake);
9. a 405 carries no Allow header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp import web

from tests.support import serving

INT64_MAX = 2**63 - 1
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade",
               "allow", "keep-alive"}
CLOSE_1000 = b"\x88\x02\x03\xe8"  # an unmasked close frame with code 1000


def decimal_durations(value: Any) -> Any:
    """`value` with every integer duration_seconds made a decimal (defect 4)."""
    if isinstance(value, dict):
        return {k: (v + 0.25 if k == "duration_seconds" and isinstance(v, int) else
                    decimal_durations(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [decimal_durations(item) for item in value]
    return value


class NonConformingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        # [\s\S]: a generated path may hold a newline, which `.` does not match
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.socket(request)
        offset = request.query.get("offset", "0")
        if request.path.endswith("/streams/active") and offset.isdigit() and \
                int(offset) > INT64_MAX:
            return web.json_response({"error": "INTERNAL", "message": "value out of int64 "
                                      "range"}, status=500)  # defect 1
        return await self.forward(request)

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self.session.request(request.method, self.upstream + request.path_qs,
                                        headers=headers, data=await request.read(),
                                        allow_redirects=False) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() not in HOP_HEADERS | {"content-encoding"}}  # defect 9: Allow
            if upstream.content_type == "application/json" and body:
                body = json.dumps(decimal_durations(json.loads(body))).encode()
            return web.Response(status=upstream.status, body=body, headers=kept)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        url = "ws" + self.upstream.removeprefix("http") + request.path_qs
        async with self.session.ws_connect(url) as upstream:
            viewer = web.WebSocketResponse()
            await viewer.prepare(request)
            relay = asyncio.create_task(self._to_upstream(viewer, upstream))
            try:
                await self._to_viewer(upstream, viewer, request)
            finally:
                relay.cancel()
        return viewer

    async def _to_upstream(self, viewer: web.WebSocketResponse,
                           upstream: aiohttp.ClientWebSocketResponse) -> None:
        async for message in viewer:
            if message.type == aiohttp.WSMsgType.TEXT:
                await upstream.send_str(message.data)

    async def _to_viewer(self, upstream: aiohttp.ClientWebSocketResponse,
                         viewer: web.WebSocketResponse, request: web.Request) -> None:
        sent = 0
        async for message in upstream:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(message.data)
            if frame.get("event") == "stream_started" and sent == 1:
                continue  # defect 2: the late joiner's stream_started
            if viewer.closed:
                return
            await viewer.send_str(json.dumps(decimal_durations(frame)))
            sent += 1
        if request.transport is not None:  # defect 8: close frame, then TCP gone at once
            request.transport.write(CLOSE_1000)
            request.transport.close()


@contextmanager
def nonconforming_proxy(upstream: str) -> Iterator[str]:
    """The proxy on a free loopback port, in a thread of its own; yields its base URL."""
    proxy = NonConformingProxy(upstream)
    app = proxy.app()

    async def open_session(_: web.Application) -> None:
        proxy.session = aiohttp.ClientSession()

    async def close_session(_: web.Application) -> None:
        if proxy.session is not None:
            await proxy.session.close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    with serving(app) as url:
        yield url
