"""The viewer: one socket per user, opened per the profile, read by its own greenlet. Records
connect time, time to the first event, push latency of every event (receive time minus the
server's `timestamp`), a clock-free round trip (`get_stream_info` → `stream_info`), answers
pings, and reconnects with backoff when dropped (not after `stream_ended`)."""

from __future__ import annotations

import contextlib
import json
import random
import time
from datetime import datetime
from typing import Any

import gevent
import websocket
from locust import User, constant, task

from harness.users.context import StreamPlan, UserContext
from harness.users.hls import HlsPlayer

BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def server_time_s(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


class ViewerConnection:
    """The socket of one viewer and its reader greenlet."""

    def __init__(self, ctx: UserContext, stream: StreamPlan, token: str, user: str,
                 on_started: Any = None) -> None:
        assert ctx.plan is not None and ctx.profile is not None
        self.ctx, self.stream, self.user = ctx, stream, user
        self.profile = ctx.profile
        self.url = self.profile.ws_url(ctx.plan.ws_base, stream.id, token)
        self.headers = self.profile.ws_headers(token)
        self.events = self.profile.event_map()
        self.ws: websocket.WebSocket | None = None
        self.stream_ended = False
        self.stopping = False
        self.reconnects = 0
        self.pending_info: dict[str, float] = {}
        self.on_started = on_started
        self.greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self.ws.close(timeout=1)
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    def _run(self) -> None:
        attempt, dropped_at = 0, None
        while not self.stopping and not self.stream_ended:
            if self._connect(dropped_at):
                attempt = 0
                self._read()
                if self.stopping or self.stream_ended or not self.ctx.plan or \
                        not self.ctx.plan.reconnect:
                    break
                dropped_at = time.time()
                self.ctx.event("viewer_dropped", self.stream.id, self.user)
            gevent.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)] * random.uniform(0.8, 1.2))
            attempt += 1

    def _connect(self, dropped_at: float | None) -> bool:
        started = time.time()
        try:
            ws = websocket.create_connection(self.url, header=self.headers, timeout=10,
                                             skip_utf8_validation=True, enable_multithread=False)
        except websocket.WebSocketBadStatusException as exc:
            self._connect_failed(started, int(exc.status_code), f"HTTP {exc.status_code}")
            if exc.status_code == 410:
                self.stream_ended = True  # nothing to reconnect to
            return False
        except (websocket.WebSocketException, OSError) as exc:
            self._connect_failed(started, None, type(exc).__name__)
            return False
        ws.settimeout(None)
        self.ws = ws
        connect_ms = (time.time() - started) * 1000
        self.ctx.sample(started, "ws_connect", "connect", connect_ms, True, 101,
                        user=self.user, stream=self.stream.id)
        self.connect_started = started
        if dropped_at is not None:
            self.reconnects += 1
            self.ctx.sample(dropped_at, "ws_reconnect", "reconnect",
                            (time.time() - dropped_at) * 1000, True, user=self.user,
                            stream=self.stream.id)
        self.ctx.event("viewer_connected", self.stream.id, self.user,
                       value=float(self.reconnects))
        return True

    def _connect_failed(self, started: float, status: int | None, error: str) -> None:
        self.ctx.sample(started, "ws_connect", "connect", (time.time() - started) * 1000, False,
                        status, error, user=self.user, stream=self.stream.id)

    def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        first, close_code = True, None
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    break
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                received = time.time()
                if first:
                    self.ctx.sample(self.connect_started, "ws_first_event", "first_event",
                                    (received - self.connect_started) * 1000, True,
                                    user=self.user, stream=self.stream.id)
                    first = False
                self._handle(data, received)
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.ctx.event("viewer_closed", self.stream.id, self.user,
                           value=float(close_code) if close_code is not None else None,
                           detail="stream_ended" if self.stream_ended else None)
            self.ws = None

    def _handle(self, raw: bytes, received: float) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.ctx.sample(received, "ws_event", "unparsable", 0.0, False, error="bad json",
                            user=self.user, stream=self.stream.id)
            return
        if self.profile.ws.envelope == "comment":
            self.ctx.sample(received, "ws_event", "comment", 0.0, True, user=self.user,
                            stream=self.stream.id, size=len(raw))
            return
        name = self.events.get(str(message.get("event")), str(message.get("event")))
        data = message.get("data") or {}
        sent = server_time_s(data.get("timestamp"))
        push_ms = (received - sent) * 1000 if sent is not None else 0.0
        self.ctx.sample(received, "ws_event", name, push_ms, sent is not None,
                        error=None if sent is not None else "no timestamp", size=len(raw),
                        user=self.user, stream=self.stream.id)
        self._react(name, data, received)

    def _react(self, name: str, data: dict[str, Any], received: float) -> None:
        if name == "ping" and self.profile.ws.keepalive == "json":
            self._send({"event": "pong", "data": {"sequence": data.get("sequence")}})
        elif name == "stream_info":
            sent_at = self.pending_info.pop(str(data.get("request_id")), None)
            if sent_at is not None:
                self.ctx.sample(sent_at, "ws_rtt", "stream_info", (received - sent_at) * 1000,
                                True, user=self.user, stream=self.stream.id)
        elif name == "viewer_count_changed":
            self.ctx.event("viewer_count_observed", self.stream.id, self.user,
                           value=float(data.get("viewer_count", -1)))
        elif name == "stream_started":
            self.ctx.event("stream_active_seen", self.stream.id, self.user, ts=received)
            if self.on_started is not None:
                self.on_started()
        elif name == "stream_ended":
            self.stream_ended = True
            self.ctx.event("stream_ended_seen", self.stream.id, self.user, ts=received,
                           detail=str(data.get("reason")))

    def _send(self, message: dict[str, Any]) -> bool:
        if self.ws is None:
            return False
        try:
            self.ws.send(json.dumps(message))
            return True
        except (websocket.WebSocketException, OSError):
            return False

    def request_info(self) -> None:
        request = self.profile.ws.info_request
        if request is None or self.ws is None:
            return
        request_id = f"{self.user}-{time.monotonic_ns()}"
        self.pending_info[request_id] = time.time()
        if len(self.pending_info) > 10:  # unanswered requests must not pile up forever
            self.pending_info.pop(next(iter(self.pending_info)))
        if not self._send({"event": request, "data": {"request_id": request_id}}):
            self.pending_info.pop(request_id, None)


class ViewerUser(User):
    """One viewer; `fixed_count` is set per run on a subclass."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        ctx: UserContext = self.environment.nova
        while ctx.plan is None:  # a worker waits for the master's plan
            gevent.sleep(0.1)
        plan = ctx.plan
        index = ctx.next_index()
        stream = plan.streams[index % len(plan.streams)]
        token = plan.viewer_tokens[index % len(plan.viewer_tokens)]
        self.name = f"{ctx.worker}-v{index}"
        self.ctx = ctx
        self.hls: HlsPlayer | None = None
        if plan.hls_share > 0 and (index * 0.618034) % 1 < plan.hls_share:
            self.hls = HlsPlayer(ctx, stream, self.name)
        self.conn = ViewerConnection(ctx, stream, token, self.name,
                                     on_started=self.hls.start if self.hls else None)
        self.conn.start()

    @task
    def ask_stream_info(self) -> None:
        assert self.ctx.plan is not None
        gevent.sleep(self.ctx.plan.info_interval_s * random.uniform(0.5, 1.5))
        self.conn.request_info()

    def on_stop(self) -> None:
        self.conn.stop()
        if self.hls is not None:
            self.hls.stop()
