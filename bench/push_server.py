"""A WebSocket server that pushes one contract-shaped `viewer_count_changed` frame per second
to every connected client, each frame stamped with its own send time just before it is
written. `--pace burst` (the default) sends in 20 slots a second, each slot to a twentieth of
the clients at once, as a service fans an event out to a stream's viewers; `--pace even`
spreads the sends over the second in 1 ms steps.

So "receive time minus stamp" at the client is what the client (and the loopback) added, not
the server's sequencing: an aiohttp server stamping once per slot of 500 clients measured its
own queue, and could not send 10,000 frames/s from one core. Here a frame is a prebuilt
WebSocket header plus a formatted string written straight to the transport.

    python bench/push_server.py PORT [--pace burst|even] [--stats]

Prints, once a second on stderr when asked (`--stats`), frames sent and frames skipped
because a client's socket buffer was full (a client that stopped reading).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import sys
import time
from datetime import UTC, datetime
from typing import ClassVar

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BACKED_UP_BYTES = 64 * 1024
FRAME = ('{"event": "viewer_count_changed", "data": {"viewer_count": %d, "peak_viewers": %d, '
         '"change": 0, "stream_id": "bench", "timestamp": "%s"}}')


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server text frame."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def accept_key(request: bytes) -> bytes | None:
    """Sec-WebSocket-Accept for a handshake request, or None when it is not one."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
    return None


class Pusher(asyncio.Protocol):
    """One client: a handshake, then frames out; whatever the client sends is ignored."""

    clients: ClassVar[dict[Pusher, None]] = {}
    sent: ClassVar[int] = 0
    skipped: ClassVar[int] = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.request = transport, b""

    def data_received(self, data: bytes) -> None:
        if self in Pusher.clients:
            return
        self.request += data
        if b"\r\n\r\n" not in self.request:
            return
        key = accept_key(self.request)
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + key +
                             b"\r\n\r\n")
        Pusher.clients[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        Pusher.clients.pop(self, None)

    def push(self, count: int) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > BACKED_UP_BYTES:
            Pusher.skipped += 1
            return
        stamp = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="microseconds")
        self.transport.write(text_frame((FRAME % (count, count, stamp)).encode()))
        Pusher.sent += 1


async def push_in_bursts(slots: int = 20) -> None:
    """Every 1/slots s, a frame to every slots-th client, written back to back."""
    loop = asyncio.get_running_loop()
    tick, started = 0, loop.time()
    while True:
        tick += 1
        await asyncio.sleep(max(0.0, started + tick / slots - loop.time()))
        targets = list(Pusher.clients)
        for client in targets[tick % slots::slots]:
            client.push(len(targets))


async def push_evenly() -> None:
    """Every second, every client once, spread over the second in 1 ms steps."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        targets = list(Pusher.clients)
        count, done = len(targets), 0
        while done < count:
            due = min(count, int((loop.time() - started) * count) + 1)
            for client in targets[done:due]:
                client.push(count)
            done = due
            await asyncio.sleep(0.001)
        await asyncio.sleep(max(0.0, started + 1.0 - loop.time()))


async def print_stats() -> None:
    while True:
        await asyncio.sleep(1.0)
        print(f"clients {len(Pusher.clients)} sent {Pusher.sent} skipped {Pusher.skipped}",
              file=sys.stderr, flush=True)


async def serve(port: int, pace: str, stats: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Pusher, "127.0.0.1", port, backlog=4096)
    tasks = [asyncio.create_task(push_evenly() if pace == "even" else push_in_bursts())]
    if stats:
        tasks.append(asyncio.create_task(print_stats()))
    async with server:
        await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--pace", choices=("burst", "even"), default="burst",
                        help="20 bursts a second (default) or sends spread evenly")
    parser.add_argument("--stats", action="store_true", help="print counts every second")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.pace, args.stats))


if __name__ == "__main__":
    main()
