"""The viewer sockets this instance holds: fan-out of stream events, coalesced viewer counts,
and the application-level ping/pong keepalive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from stack.service.clock import rfc3339_now
from stack.service.config import Settings
from stack.service.live import LiveState
from stack.service.metrics import ServiceMetrics

log = logging.getLogger("nova.viewers")

CountListener = Callable[[str, int], Awaitable[None]]


@dataclass(eq=False)
class Viewer:
    """One open viewer socket."""

    ws: web.WebSocketResponse
    stream_id: str
    viewer_id: uuid.UUID
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    ping_sequence: int = 0
    last_alive_s: float = 0.0
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000
    close_message: bytes = b""

    def request_close(self, code: int, message: bytes) -> None:
        """Ask the socket's own handler to close it. Only the task that reads the socket can
        wait for the client's close frame (RFC 6455 §7.1.1): closed by another task while a
        read is pending, aiohttp drops the TCP connection at once and the client sees an
        unclean close."""
        if not self.closing.is_set():
            self.close_code, self.close_message = code, message
            self.closing.set()


def frame(event: str, stream_id: str, data: dict[str, Any]) -> str:
    """A server frame; `timestamp` is the send time the harness measures push latency from."""
    return json.dumps({"event": event,
                       "data": {**data, "stream_id": stream_id, "timestamp": rfc3339_now()}})


class ViewerHub:
    """Sockets per stream on this instance; events arrive through LiveState fan-out."""

    def __init__(self, settings: Settings, live: LiveState, metrics: ServiceMetrics) -> None:
        self._settings = settings
        self._live = live
        self._metrics = metrics
        self._by_stream: dict[str, set[Viewer]] = {}
        self._announced: dict[str, int] = {}
        self._pending: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        # Filled only by NOVA_BROKEN_LEAK_PER_VIEWER_BYTES: memory kept for every viewer that
        # ever joined, so the soak leak verdict can be shown to fail.
        self.extra_references: list[object] = []

    @property
    def open_sockets(self) -> int:
        return sum(len(v) for v in self._by_stream.values())

    def local_count(self, stream_id: str) -> int:
        return len(self._by_stream.get(stream_id, ()))

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._keepalive_forever())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        # All at once: each close waits (up to the handshake timeout) for its client's answer.
        await asyncio.gather(*(viewer.ws.close(code=1001, message=b"server shutting down")
                               for viewers in list(self._by_stream.values())
                               for viewer in list(viewers)), return_exceptions=True)

    def going_away(self) -> None:
        """The service is stopping: every socket's handler closes it (1001) and waits for its
        client's answer, so the server's wait for open handlers ends within the handshake
        timeout instead of running into its shutdown timeout."""
        for viewers in self._by_stream.values():
            for viewer in viewers:
                viewer.request_close(1001, b"server shutting down")

    async def join(self, viewer: Viewer) -> None:
        viewer.last_alive_s = asyncio.get_running_loop().time()
        self._by_stream.setdefault(viewer.stream_id, set()).add(viewer)
        if self._settings.broken_leak_per_viewer_bytes:  # a deliberately leaking test target
            # Written bytes, not bytes(n): zero pages from calloc would not be resident.
            self.extra_references.append(b"\x01" * self._settings.broken_leak_per_viewer_bytes)
        await self._count_changed(viewer.stream_id)

    async def leave(self, viewer: Viewer) -> None:
        viewers = self._by_stream.get(viewer.stream_id)
        if viewers is None or viewer not in viewers:
            return
        viewers.discard(viewer)
        if not viewers:
            del self._by_stream[viewer.stream_id]
        await self._count_changed(viewer.stream_id)

    async def _count_changed(self, stream_id: str) -> None:
        self._metrics.websocket_connections.set(self.open_sockets)
        await self._live.set_local_count(stream_id, self.local_count(stream_id))
        if stream_id not in self._pending:
            self._pending.add(stream_id)
            asyncio.get_running_loop().call_later(
                self._settings.viewer_coalesce_ms / 1000,
                lambda: asyncio.create_task(self._announce_count(stream_id)),
            )

    async def _announce_count(self, stream_id: str) -> None:
        self._pending.discard(stream_id)
        total, peak = await self._live.counts(stream_id)
        previous = self._announced.get(stream_id, 0)
        if total == previous:
            return  # another instance announced this total already
        self._announced[stream_id] = total
        await self._live.publish(stream_id, {
            "event": "viewer_count_changed",
            "data": {"viewer_count": total, "peak_viewers": peak, "change": total - previous},
        })

    async def deliver(self, stream_id: str, message: dict[str, Any]) -> None:
        """Send an event to this instance's viewers of the stream; close them after
        `stream_ended`."""
        event = str(message["event"])
        data = dict(message["data"])
        if event == "viewer_count_changed":
            self._announced[stream_id] = int(data["viewer_count"])
        viewers = list(self._by_stream.get(stream_id, ()))
        if viewers:
            text = frame(event, stream_id, data)
            await asyncio.gather(*(self._send(v, text) for v in viewers))
            self._metrics.ws_messages_sent.labels(event).inc(len(viewers))
        if event == "stream_ended":
            self._announced.pop(stream_id, None)
            for viewer in viewers:
                viewer.request_close(1000, b"stream ended")

    async def _send(self, viewer: Viewer, text: str) -> None:
        try:
            await viewer.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("send to viewer %s failed: %s", viewer.session_id, exc)

    async def _keepalive_forever(self) -> None:
        interval_s = self._settings.ws_ping_interval_s
        while True:
            await asyncio.sleep(interval_s)
            now = asyncio.get_running_loop().time()
            for viewers in list(self._by_stream.values()):
                for viewer in list(viewers):
                    await self._ping_or_drop(viewer, now)

    async def _ping_or_drop(self, viewer: Viewer, now_s: float) -> None:
        if now_s - viewer.last_alive_s > self._settings.ws_pong_timeout_s:
            log.info("dropping viewer %s: no pong for %.0fs", viewer.session_id,
                     now_s - viewer.last_alive_s)
            viewer.request_close(1001, b"pong timeout")
            return
        viewer.ping_sequence += 1
        await self._send(viewer, frame("ping", viewer.stream_id,
                                       {"sequence": viewer.ping_sequence}))
        self._metrics.ws_messages_sent.labels("ping").inc()
