"""A plain threaded viewer-socket client for checks and smoke runs (the load engine has its own
gevent-based viewers). It collects every frame with its receive time and the close code."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websocket


@dataclass(frozen=True)
class Frame:
    """One server frame and when it arrived (epoch seconds)."""

    event: str
    data: dict[str, Any]
    received_s: float


@dataclass
class ViewerProbe:
    """One viewer socket. `frames` fills in the background until the socket closes."""

    url: str
    source_address: str | None = None  # a loopback address of its own (harness/suites/base.py)
    frames: list[Frame] = field(default_factory=list)
    close_code: int | None = None
    pongs: list[bytes] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    _ws: websocket.WebSocket | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def connect(self, timeout_s: float = 5.0) -> ViewerProbe:
        sock = None
        if self.source_address:
            where = urlsplit(self.url)
            sock = socket.create_connection((where.hostname, where.port or 80), timeout_s,
                                            source_address=(self.source_address, 0))
        self._ws = websocket.create_connection(self.url, timeout=timeout_s,
                                               skip_utf8_validation=True, socket=sock)
        self._ws.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self._ws is not None
        try:
            while True:
                opcode, frame = self._ws.recv_data_frame(True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(frame.data[:2], "big") if frame.data else None
                    break
                if opcode == websocket.ABNF.OPCODE_PONG:
                    with self._arrived:
                        self.pongs.append(bytes(frame.data))
                        self._arrived.notify_all()
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    message = json.loads(frame.data)
                    with self._arrived:
                        self.frames.append(Frame(message["event"], message.get("data", {}),
                                                 time.time()))
                        self._arrived.notify_all()
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.closed.set()
            with self._arrived:
                self._arrived.notify_all()

    def send(self, event: str, **data: Any) -> None:
        assert self._ws is not None
        self._ws.send(json.dumps({"event": event, "data": data}))

    def send_raw(self, text: str) -> None:
        assert self._ws is not None
        self._ws.send(text)

    def wait_for(self, event: str, timeout_s: float = 5.0, after: int = 0) -> Frame | None:
        """The first frame named `event` at index ≥ `after`, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for frame in self.frames[after:]:
                    if frame.event == event:
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    return None
                self._arrived.wait(remaining)

    def ping(self, payload: bytes, timeout_s: float = 5.0) -> bool:
        """A protocol-level ping; whether its pong came back within `timeout_s`."""
        assert self._ws is not None
        self._ws.ping(payload)
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while payload not in self.pongs:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    return False
                self._arrived.wait(remaining)
        return True

    def events(self) -> list[str]:
        with self._arrived:
            return [f.event for f in self.frames]

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.close()
        self.closed.wait(2.0)
