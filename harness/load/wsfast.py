"""A lean WebSocket client for viewers: handshake once, then read server frames straight from
a gevent socket and parse their headers by hand. Per received event it costs a fraction of
websocket-client's object-heavy frame path (bench/ws_clients.py measures both). Client frames
are masked as RFC 6455 requires; fragmented messages are reassembled."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _mask(payload: bytes, key: bytes) -> bytes:
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        length, "little")


def client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + key + _mask(payload, key)


class ProtocolViolation(OSError):
    """The server sent bytes that are not a valid frame (RFC 6455 §5.2: fail the connection).
    An OSError, so readers treat it like a broken socket: the viewer drops and reconnects."""


class FrameParser:
    """Incremental parser of server frames; answers pings and acknowledges close through
    `send(opcode, payload)`."""

    def __init__(self, send: Callable[[int, bytes], None]) -> None:
        self.send = send
        self.buf = b""
        self.partial: list[bytes] = []
        self.partial_op = OP_TEXT
        self.close_code: int | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf + data if self.buf else data
        pos, end, out = 0, len(buf), []
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            # Reserved bits (no extension is negotiated), a masked server frame or a fragmented
            # control frame: e.g. an HTTP error page written into the stream after the upgrade.
            if b0 & 0x70 or b1 & 0x80 or (b0 & 0x08 and not b0 & 0x80):
                raise ProtocolViolation(f"invalid frame header {buf[pos:pos + 2]!r}")
            length, header = b1 & 0x7F, 2
            if length == 126:
                header = 4
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                header = 10
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            if end - pos < header + length:
                break
            payload = buf[pos + header:pos + header + length]
            pos += header + length
            opcode = b0 & 0x0F
            if not b0 & 0x80 or opcode == OP_CONT:  # a fragment
                if opcode != OP_CONT:
                    self.partial_op = opcode
                self.partial.append(payload)
                if not b0 & 0x80:
                    continue
                opcode, payload = self.partial_op, b"".join(self.partial)
                self.partial = []
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 \
                    else None
                self.send(OP_CLOSE, payload[:2])
            out.append((opcode, payload))
        self.buf = buf[pos:]
        return out


class FastSocket:
    """One client connection. `frames()` yields (opcode, payload) until the socket closes."""

    def __init__(self, url: str, headers: list[str] | None = None,
                 timeout_s: float = 10.0) -> None:
        self.url = urlsplit(url)
        self.headers = headers or []
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self._leftover = b""
        self.close_code: int | None = None

    def connect(self) -> None:
        host, port = self.url.hostname or "127.0.0.1", self.url.port or 80
        sock = socket.create_connection((host, port), timeout=self.timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13", *self.headers, "", ""]
        sock.sendall("\r\n".join(lines).encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                raise ConnectionError("connection closed during the handshake")
            response += chunk
        head, _, self._leftover = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            sock.close()
            raise HandshakeRefused(status)
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
        if accept not in head:
            sock.close()
            raise ConnectionError("bad Sec-WebSocket-Accept")
        sock.settimeout(None)
        self.sock = sock

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Complete messages as they arrive (blocking); pings are answered here."""
        assert self.sock is not None
        parser = FrameParser(self._send)
        chunk = self._leftover
        while True:
            for opcode, payload in parser.feed(chunk):
                if opcode == OP_CLOSE:
                    self.close_code = parser.close_code
                yield opcode, payload
                if opcode == OP_CLOSE:
                    return
            chunk = self.sock.recv(262144)
            if not chunk:
                return

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def start_nonblocking(self) -> FrameParser:
        """Switch to reactor mode: the caller polls and calls `read_available()`."""
        assert self.sock is not None
        self.sock.setblocking(False)
        self.parser = FrameParser(self._send)
        return self.parser

    def read_available(self) -> list[tuple[int, bytes]] | None:
        """Messages completed by what the socket holds now; None at end of stream."""
        assert self.sock is not None
        chunks = []
        if self._leftover:
            chunks.append(self._leftover)
            self._leftover = b""
        while True:
            try:
                chunk = self.sock.recv(262144)
            except BlockingIOError:
                break
            if not chunk:
                if not chunks:
                    return None
                break
            chunks.append(chunk)
            if len(chunk) < 262144:
                break
        messages = self.parser.feed(b"".join(chunks)) if chunks else []
        if any(op == OP_CLOSE for op, _ in messages):
            self.close_code = self.parser.close_code
        return messages

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.sock is None:
            raise OSError("not connected")
        try:
            self.sock.sendall(client_frame(opcode, payload))
        except BlockingIOError as exc:  # reactor mode and a full send buffer: give up on it
            raise OSError("send buffer full") from exc

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode())

    def ping(self, payload: bytes = b"") -> None:
        self._send(OP_PING, payload)

    def close(self, code: int = 1000) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.sendall(client_frame(OP_CLOSE, code.to_bytes(2, "big")))
        sock.close()
