"""The lean WebSocket client's frame handling, against hand-made server frames on a socket
pair: lengths of every header size, fragmentation, pings, close, and masking."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.load.wsfast import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FastSocket,
    FrameParser,
    ProtocolViolation,
    _mask,
    client_frame,
)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big") + payload
    return bytes((first, 127)) + length.to_bytes(8, "big") + payload


def connected_pair() -> tuple[FastSocket, socket.socket]:
    client_side, server_side = socket.socketpair()
    fast = FastSocket("ws://127.0.0.1:1/x")
    fast.sock = client_side
    return fast, server_side


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    header = sock.recv(2)
    length = header[1] & 0x7F
    key = sock.recv(4)
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    return header[0] & 0x0F, _mask(data, key)


def test_frames_of_every_length_arrive_whole() -> None:
    fast, server = connected_pair()
    payloads = [b"x" * n for n in (0, 5, 125, 126, 4000, 65535, 65536, 300_000)]
    blob = b"".join(server_frame(OP_TEXT, p) for p in payloads) + server_frame(
        OP_CLOSE, (1000).to_bytes(2, "big"))
    sender = threading.Thread(target=lambda: server.sendall(blob))
    sender.start()
    received = []
    for opcode, payload in fast.frames():
        if opcode == OP_CLOSE:
            break
        received.append(payload)
    sender.join()
    assert received == payloads
    assert fast.close_code == 1000
    assert read_client_frame(server) == (OP_CLOSE, (1000).to_bytes(2, "big"))


def test_fragments_are_joined_and_pings_answered() -> None:
    fast, server = connected_pair()
    server.sendall(server_frame(OP_TEXT, b'{"event": ', fin=False)
                   + server_frame(OP_PING, b"hi")
                   + server_frame(0x0, b'"x"}', fin=True)
                   + server_frame(OP_CLOSE, b""))
    frames = list(fast.frames())
    assert frames[0] == (OP_TEXT, b'{"event": "x"}')
    assert read_client_frame(server) == (OP_PONG, b"hi")
    assert frames[-1][0] == OP_CLOSE and fast.close_code is None


def test_client_frames_are_masked() -> None:
    frame = client_frame(OP_TEXT, b"hello")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 5
    assert _mask(frame[6:], frame[2:6]) == b"hello"
    assert OP_PING != OP_PONG


@pytest.mark.parametrize("garbage", [
    b"HTTP/1.1 500 Internal Server Error\r\n\r\n",   # an error page after the upgrade
    bytes((0x81, 0x85)) + b"mask" + b"hello",            # a masked server frame
    bytes((0x09, 0x00)),                                 # a fragmented ping
])
def test_bytes_that_are_not_frames_fail_the_connection(garbage: bytes) -> None:
    parser = FrameParser(lambda opcode, payload: None)
    assert parser.feed(server_frame(OP_TEXT, b"fine")) == [(OP_TEXT, b"fine")]
    with pytest.raises(ProtocolViolation):
        parser.feed(garbage)
