"""A latency-injecting TCP proxy for one role of the local stack (`stack up --latency-proxy
postgres`). It forwards 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM and delays every chunk by the
settings in a small JSON file that fault actions rewrite while it runs:

    {"delay_ms": 200, "jitter_ms": 20, "loss_pct": 1}

A proxy cannot drop bytes of a TCP stream without corrupting it, so `loss_pct` is emulated as
what TCP makes of a lost segment: that chunk waits one extra minimum retransmission timeout
(200 ms). Order is kept in each direction. It is the fallback for kernels without `sch_netem`
(this machine: "Specified qdisc kind is unknown")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

RETRANSMIT_PENALTY_S = 0.2
SETTINGS_POLL_S = 0.1
CHUNK_BYTES = 65536


@dataclass(frozen=True)
class Impairment:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def chunk_delay_s(self, rng: random.Random) -> float:
        delay_s = max(0.0, self.delay_ms + rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000
        if self.loss_pct and rng.random() * 100 < self.loss_pct:
            delay_s += RETRANSMIT_PENALTY_S
        return delay_s


def read_impairment(path: Path) -> Impairment:
    """The settings file, or no impairment when it is missing or unreadable."""
    try:
        raw = json.loads(path.read_text())
        return Impairment(float(raw.get("delay_ms", 0)), float(raw.get("jitter_ms", 0)),
                          float(raw.get("loss_pct", 0)))
    except (OSError, ValueError, AttributeError):
        return Impairment()


class Proxy:
    def __init__(self, upstream_port: int, settings: Path) -> None:
        self.upstream_port = upstream_port
        self.settings = settings
        self.impairment = Impairment()
        self.rng = random.Random()

    async def watch_settings(self) -> None:
        mtime = None
        while True:
            with contextlib.suppress(OSError):
                current = self.settings.stat().st_mtime_ns
                if current != mtime:
                    mtime, self.impairment = current, read_impairment(self.settings)
            await asyncio.sleep(SETTINGS_POLL_S)

    async def handle(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1",
                                                                   self.upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self.pipe(client_r, upstream_w), self.pipe(upstream_r, client_w),
                             return_exceptions=True)

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; each chunk is written when its own delay has passed, never
        before the chunk ahead of it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait_s = due - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(send())
        last_due = 0.0
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                last_due = max(last_due, loop.time() + self.impairment.chunk_delay_s(self.rng))
                queue.put_nowait((last_due, chunk))
        except OSError:
            pass
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await sender
        writer.close()


async def serve(listen_port: int, upstream_port: int, settings: Path) -> None:
    proxy = Proxy(upstream_port, settings)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen_port, backlog=4096)
    async with server:
        await asyncio.gather(server.serve_forever(), proxy.watch_settings())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.netproxy")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--settings", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.upstream, args.settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
