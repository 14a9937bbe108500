"""A WebSocket server that pushes one contract-shaped `viewer_count_changed` frame per second
to every connected client, spread evenly over the second, stamped with its send time.

    python bench/push_server.py PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime

from aiohttp import web

clients: list[web.WebSocketResponse] = []


def stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


async def socket_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, compress=False)
    await ws.prepare(request)
    clients.append(ws)
    try:
        async for _ in ws:
            pass
    finally:
        clients.remove(ws)
    return ws


async def push_forever(app: web.Application) -> None:
    slots = 20
    tick = 0
    while True:
        await asyncio.sleep(1 / slots)
        tick += 1
        batch = clients[tick % slots::slots]
        # One frame per slot (stamped once): the server must not be the bottleneck.
        text = json.dumps({"event": "viewer_count_changed", "data": {
            "viewer_count": len(clients), "peak_viewers": len(clients), "change": 0,
            "stream_id": "bench", "timestamp": stamp()}})
        for ws in batch:
            if not ws.closed:
                # A client that leaves between the check and the write must not end the loop
                # that serves every other client.
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(text)


async def start_pushing(app: web.Application) -> None:
    app["pusher"] = asyncio.create_task(push_forever(app))


def main() -> None:
    app = web.Application()
    app.router.add_get("/api/v1/streams/{stream_id}/ws", socket_handler)
    app.on_startup.append(start_pushing)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), backlog=4096, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
