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
import gevent.event
import websocket
from locust import User, constant, task

from harness.load.context import StreamPlan, UserContext
from harness.load.drops import DropTracker, refused_as_gone
from harness.load.hls import HlsPlayer
from harness.load.reactor import reactor
from harness.load.wsfast import OP_CLOSE, OP_TEXT, FastSocket, HandshakeRefused
from records.schema import WS_CONNECT, WS_EVENT, WS_FIRST_EVENT, WS_RECONNECT, WS_RTT

_EVENT_PREFIX = b'{"event": "'
_TIMESTAMP = b'"timestamp": "'
_VIEWER_COUNT = b'"viewer_count": '
# Events whose data the viewer acts on; the rest only need name and timestamp.
_NEEDS_DATA = frozenset({"ping", "stream_info", "stream_started", "stream_ended"})

BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class WebsocketClientSocket:
    """websocket-client behind FastSocket's interface (kept for the side-by-side benchmark)."""

    def __init__(self, url: str, headers: list[str], timeout_s: float = 10.0) -> None:
        self.url, self.headers, self.timeout_s = url, headers, timeout_s
        self.ws: websocket.WebSocket | None = None
        self.close_code: int | None = None

    def connect(self) -> None:
        try:
            self.ws = websocket.create_connection(self.url, header=self.headers,
                                                  timeout=self.timeout_s,
                                                  skip_utf8_validation=True)
        except websocket.WebSocketBadStatusException as exc:
            raise HandshakeRefused(int(exc.status_code)) from None
        except websocket.WebSocketException as exc:
            raise ConnectionError(str(exc)) from None
        self.ws.settimeout(None)

    def frames(self) -> Any:
        assert self.ws is not None
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 \
                        else None
                    yield OP_CLOSE, data
                    return
                yield opcode, data
        except websocket.WebSocketException:
            return

    def send_text(self, text: str) -> None:
        if self.ws is None:
            raise OSError("not connected")
        try:
            self.ws.send(text)
        except websocket.WebSocketException as exc:
            raise OSError(str(exc)) from None

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=1)


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
                 on_started: Any = None, client: str = "fast") -> None:
        assert ctx.plan is not None and ctx.profile is not None
        self.ctx, self.stream, self.user = ctx, stream, user
        self.profile = ctx.profile
        self.url = self.profile.ws_url(ctx.plan.ws_base, stream.id, token)
        self.headers = self.profile.ws_headers(token)
        self.events = self.profile.event_map()
        self.client = client
        self.ws: FastSocket | WebsocketClientSocket | None = None
        self.last_count: int | None = None
        self.stream_ended = False
        self.stopping = False
        self.reconnects = 0
        self.pending_info: dict[str, float] = {}
        self.on_started = on_started
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.drop = DropTracker(ctx, stream.id, user)

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """The reader's `finally` unregisters and closes the socket, in that order, so a
        reused file descriptor number never meets a stale handler."""
        self.stopping = True
        if self.greenlet is not None:
            self.greenlet.kill(block=False)

    def _run(self) -> None:
        attempt = 0
        try:
            while not self.stopping and not self.stream_ended:
                if self._connect():
                    attempt = 0
                    self._read()
                    if self.stopping or self.stream_ended or not self.ctx.plan or \
                            not self.ctx.plan.reconnect:
                        break
                    self.drop.broke(time.time())
                gevent.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)] *
                             random.uniform(0.8, 1.2))
                attempt += 1
        finally:  # also when killed by stop() while backing off
            self.drop.settle()

    def _connect(self) -> bool:
        started = time.time()
        ws = FastSocket(self.url, self.headers) if self.client == "fast" else \
            WebsocketClientSocket(self.url, self.headers)
        try:
            ws.connect()
        except HandshakeRefused as exc:
            self._connect_failed(started, exc.status, f"HTTP {exc.status}")
            if refused_as_gone(self.profile, exc.status):
                self.stream_ended = True  # nothing to reconnect to
                self.drop.stream_gone()
            else:
                self.drop.attempted()
            return False
        except OSError as exc:
            self._connect_failed(started, None, type(exc).__name__)
            self.drop.attempted()
            return False
        self.ws = ws
        connect_ms = (time.time() - started) * 1000
        self.ctx.sample(started, WS_CONNECT, "connect", connect_ms, True, 101,
                        user=self.user, stream=self.stream.id)
        self.connect_started = started
        broken_at_s = self.drop.reconnected()
        if broken_at_s is not None:
            self.reconnects += 1
            self.ctx.sample(broken_at_s, WS_RECONNECT, "reconnect",
                            (time.time() - broken_at_s) * 1000, True, user=self.user,
                            stream=self.stream.id)
        self.ctx.event("viewer_connected", self.stream.id, self.user,
                       value=float(self.reconnects))
        return True

    def _connect_failed(self, started: float, status: int | None, error: str) -> None:
        self.ctx.sample(started, WS_CONNECT, "connect", (time.time() - started) * 1000, False,
                        status, error, user=self.user, stream=self.stream.id)

    def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        self._first = True
        try:
            if isinstance(ws, FastSocket):
                self._read_with_reactor(ws)
            else:
                for opcode, data in ws.frames():
                    if opcode == OP_TEXT:
                        self._on_text(data, time.time())
        except OSError:
            pass
        finally:
            ws.close()
            close_code = ws.close_code
            self.ctx.event("viewer_closed", self.stream.id, self.user,
                           value=float(close_code) if close_code is not None else None,
                           detail="stream_ended" if self.stream_ended else None)
            self.ws = None

    def _read_with_reactor(self, ws: FastSocket) -> None:
        done = gevent.event.Event()
        ws.start_nonblocking()
        fd = ws.fileno()

        def on_readable() -> None:
            try:
                messages = ws.read_available()
            except OSError:
                messages = None
            if messages is None:
                done.set()
                return
            received = time.time()
            for opcode, data in messages:
                if opcode == OP_TEXT:
                    self._on_text(data, received)
                elif opcode == OP_CLOSE:
                    done.set()

        loop = reactor()
        loop.register(fd, on_readable)
        try:
            done.wait()
        finally:
            loop.unregister(fd)

    def _on_text(self, data: bytes, received: float) -> None:
        if self._first:
            self._first = False
            self.ctx.sample(self.connect_started, WS_FIRST_EVENT, "first_event",
                            (received - self.connect_started) * 1000, True,
                            user=self.user, stream=self.stream.id)
        self._handle(data, received)

    def _handle(self, raw: bytes, received: float) -> None:
        if not raw.startswith(_EVENT_PREFIX) or self.profile.ws.envelope != "event":
            self._handle_parsed(raw, received)
            return
        # Fast path: name and timestamp are sliced from the bytes; JSON is parsed only for the
        # few events whose data the viewer acts on.
        wire = raw[11:raw.find(b'"', 11)].decode()
        name = self.events.get(wire, wire)
        at = raw.rfind(_TIMESTAMP)
        sent = server_time_s(raw[at + 14:raw.find(b'"', at + 14)].decode()) if at >= 0 else None
        self._record_event(name, sent, received, len(raw))
        if name in _NEEDS_DATA:
            self._react(name, json.loads(raw).get("data") or {}, received)
        elif name == "viewer_count_changed":
            at = raw.find(_VIEWER_COUNT)
            if at >= 0:
                digits = raw[at + 16:at + 28].split(b",", 1)[0].split(b"}", 1)[0]
                self._observe_count(int(digits), received)

    def _handle_parsed(self, raw: bytes, received: float) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.ctx.sample(received, WS_EVENT, "unparsable", 0.0, False, error="bad json",
                            user=self.user, stream=self.stream.id)
            return
        if self.profile.ws.envelope == "comment":
            self.ctx.sample(received, WS_EVENT, "comment", 0.0, True, user=self.user,
                            stream=self.stream.id, size=len(raw))
            return
        name = self.events.get(str(message.get("event")), str(message.get("event")))
        data = message.get("data") or {}
        self._record_event(name, server_time_s(data.get("timestamp")), received, len(raw))
        if name == "viewer_count_changed":
            self._observe_count(int(data.get("viewer_count", -1)), received)
        else:
            self._react(name, data, received)

    def _record_event(self, name: str, sent: float | None, received: float, size: int) -> None:
        push_ms = (received - sent) * 1000 if sent is not None else 0.0
        self.ctx.sample(received, WS_EVENT, name, push_ms, sent is not None,
                        error=None if sent is not None else "no timestamp", size=size,
                        user=self.user, stream=self.stream.id)

    def _observe_count(self, count: int, received: float) -> None:
        """Only changes are events: the count itself is in every ws_event row's stream."""
        if count != self.last_count:
            self.last_count = count
            self.ctx.event("viewer_count_observed", self.stream.id, self.user,
                           value=float(count), ts=received)

    def _react(self, name: str, data: dict[str, Any], received: float) -> None:
        if name == "ping" and self.profile.ws.keepalive == "json":
            self._send({"event": "pong", "data": {"sequence": data.get("sequence")}})
        elif name == "stream_info":
            sent_at = self.pending_info.pop(str(data.get("request_id")), None)
            if sent_at is not None:
                self.ctx.sample(sent_at, WS_RTT, "stream_info", (received - sent_at) * 1000,
                                True, user=self.user, stream=self.stream.id)
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
            self.ws.send_text(json.dumps(message))
            return True
        except OSError:
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
                                     on_started=self.hls.start if self.hls else None,
                                     client=plan.ws_client)
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
