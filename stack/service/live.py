"""Live state shared by service instances through Redis — viewer counts, peaks, the active set,
cached stream rows, rate-limit buckets, event fan-out — with an in-process fallback while Redis
is down, and a rebuild of Redis state when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stack.service.config import Settings
from stack.service.tasks import cancel_all

log = logging.getLogger("nova.live")

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
SnapshotSource = Callable[[], Awaitable[list[tuple[str, str]]]]

_HEARTBEAT_TTL_S = 5
_PEAK_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local candidate = tonumber(ARGV[1])
if candidate > current then redis.call('SET', KEYS[1], candidate) return candidate end
return current
"""
_DOWN_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def _viewers_key(stream_id: str) -> str:
    return f"nova:viewers:{stream_id}"


def _peak_key(stream_id: str) -> str:
    return f"nova:peak:{stream_id}"


class LiveState:
    """One per service instance. `up` says whether Redis is currently usable."""

    def __init__(self, settings: Settings, on_event: EventHandler) -> None:
        self._instance = settings.instance_id
        self._count_offset = settings.broken_viewer_count_offset
        self._count_writes = asyncio.Lock()
        self._redis = aioredis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            decode_responses=True,
        )
        # Pub/sub waits for messages indefinitely: it needs a client without a read timeout.
        self._pubsub_redis = aioredis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout_s,
            decode_responses=True,
        )
        self._subscribed = asyncio.Event()
        self._on_event = on_event
        self._snapshot: SnapshotSource | None = None
        self.up = False
        self._local_counts: dict[str, int] = {}
        self._local_peaks: dict[str, int] = {}
        self._local_buckets: dict[str, tuple[int, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._peak = self._redis.register_script(_PEAK_SCRIPT)

    async def start(self, snapshot: SnapshotSource) -> None:
        """`snapshot` returns (stream_id, cached row JSON) of every active stream, for rebuilds."""
        self._snapshot = snapshot
        await self._check()
        self._tasks = [asyncio.create_task(self._watchdog()),
                       asyncio.create_task(self._subscribe_forever())]
        if self.up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), timeout=2.0)

    async def close(self) -> None:
        await cancel_all(self._tasks)
        with contextlib.suppress(*_DOWN_ERRORS):
            await self._redis.delete(f"nova:instance:{self._instance}")
        await self._redis.aclose()
        await self._pubsub_redis.aclose()

    # -- health --------------------------------------------------------------------------

    async def ping_ms(self) -> float:
        started = time.perf_counter()
        await self._redis.ping()
        return (time.perf_counter() - started) * 1000

    async def _check(self) -> None:
        try:
            await self._redis.set(f"nova:instance:{self._instance}", "1", ex=_HEARTBEAT_TTL_S)
        except _DOWN_ERRORS as exc:
            if self.up:
                log.warning("redis down (%s): using in-process state", exc)
            self.up = False
            return
        if not self.up:
            await self._rebuild()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._check()

    async def _rebuild(self) -> None:
        """Write this instance's view back into Redis after it was unreachable or restarted."""
        try:
            snapshot = await self._snapshot() if self._snapshot else []
        except Exception as exc:  # the database may be down too; rebuild what we can
            log.warning("rebuild without active-stream snapshot: %s", exc)
            snapshot = []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream_id, count in self._local_counts.items():
                    pipe.hset(_viewers_key(stream_id), self._instance, count)
                for stream_id, row_json in snapshot:
                    pipe.sadd("nova:active", stream_id)
                    pipe.set(f"nova:stream:{stream_id}", row_json)
                await pipe.execute()
            for stream_id, peak in self._local_peaks.items():
                await self._peak(keys=[_peak_key(stream_id)], args=[peak])
        except _DOWN_ERRORS as exc:
            log.warning("redis rebuild failed: %s", exc)
            return
        self.up = True
        log.info("redis up: state rebuilt (%d streams)", len(snapshot))

    # -- viewer counts -------------------------------------------------------------------

    async def set_local_count(self, stream_id: str, count: int) -> None:
        """Record how many sockets of `stream_id` this instance holds."""
        if count:
            self._local_counts[stream_id] = count
        else:
            self._local_counts.pop(stream_id, None)
        if not self.up:
            return
        # Concurrent leaves write over pooled connections and can reach Redis out of order
        # (20 viewers leaving at once left a count 4 too high until the next change): one
        # write at a time, each of the count as it is when written, so the last one is true.
        async with self._count_writes:
            try:
                await self._redis.hset(_viewers_key(stream_id), self._instance,
                                       self._local_counts.get(stream_id, 0))
            except _DOWN_ERRORS:
                self.up = False

    async def counts(self, stream_id: str) -> tuple[int, int]:
        """(viewers now across live instances, peak viewers) of a stream."""
        local = self._local_counts.get(stream_id, 0)
        total = local
        peak = max(self._local_peaks.get(stream_id, 0), local)
        if self.up:
            try:
                total = await self._fleet_count(stream_id)
                peak = int(await self._peak(keys=[_peak_key(stream_id)], args=[max(peak, total)]))
            except _DOWN_ERRORS:
                self.up = False
        self._local_peaks[stream_id] = max(peak, total)
        if self._count_offset and total:  # a deliberately wrong test target
            return total + self._count_offset, max(peak, total) + self._count_offset
        return total, max(peak, total)

    async def _fleet_count(self, stream_id: str) -> int:
        raw = await self._redis.hgetall(_viewers_key(stream_id))
        per_instance = {str(name): int(count) for name, count in raw.items()}
        if not per_instance:
            return 0
        names = list(per_instance)
        # An instance that died without cleaning up stops counting once its heartbeat expires.
        alive = await self._redis.mget([f"nova:instance:{n}" for n in names])
        return sum(per_instance[n] for n, a in zip(names, alive, strict=True)
                   if a or n == self._instance)

    async def forget_stream(self, stream_id: str) -> None:
        self._local_counts.pop(stream_id, None)
        self._local_peaks.pop(stream_id, None)
        if self.up:
            try:
                await self._redis.srem("nova:active", stream_id)
                await self._redis.delete(_viewers_key(stream_id))
            except _DOWN_ERRORS:
                self.up = False

    async def reset_instance(self) -> None:
        """A (re)started instance holds no sockets: drop counts it left behind."""
        if not self.up:
            return
        try:
            async for key in self._redis.scan_iter("nova:viewers:*"):
                await self._redis.hdel(key, self._instance)
        except _DOWN_ERRORS:
            self.up = False

    # -- cached rows of active streams (reads while PostgreSQL is down) ------------------

    async def cache_stream(self, stream_id: str, row_json: str, active: bool) -> None:
        if not self.up:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"nova:stream:{stream_id}", row_json, ex=None if active else 3600)
                if active:
                    pipe.sadd("nova:active", stream_id)
                else:
                    pipe.srem("nova:active", stream_id)
                await pipe.execute()
        except _DOWN_ERRORS:
            self.up = False

    async def cached_stream(self, stream_id: str) -> str | None:
        if not self.up:
            return None
        try:
            value = await self._redis.get(f"nova:stream:{stream_id}")
        except _DOWN_ERRORS:
            self.up = False
            return None
        return str(value) if value is not None else None

    async def cached_active(self) -> list[str] | None:
        if not self.up:
            return None
        try:
            ids = sorted(str(i) for i in await self._redis.smembers("nova:active"))
            rows = await self._redis.mget([f"nova:stream:{i}" for i in ids]) if ids else []
        except _DOWN_ERRORS:
            self.up = False
            return None
        return [str(r) for r in rows if r is not None]

    # -- rate limits -------------------------------------------------------------------

    async def hit(self, bucket: str, limit: int, window_s: int) -> int | None:
        """Count one request in a fixed window; seconds to wait when over the limit."""
        now = int(time.time())
        window_start = now - now % window_s
        retry_after_s = window_start + window_s - now
        key = f"nova:rl:{bucket}:{window_s}:{window_start}"
        if self.up:
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, window_s + 1)
                    count = int((await pipe.execute())[0])
                return retry_after_s if count > limit else None
            except _DOWN_ERRORS:
                self.up = False
        started, count = self._local_buckets.get(bucket, (window_start, 0))
        count = count + 1 if started == window_start else 1
        self._local_buckets[bucket] = (window_start, count)
        if len(self._local_buckets) > 100_000:  # bound memory under an address sweep
            self._local_buckets.clear()
        return retry_after_s if count > limit else None

    # -- events ------------------------------------------------------------------------

    async def publish(self, stream_id: str, message: dict[str, Any]) -> None:
        """Fan an event out to every instance's viewers of the stream (local only when down)."""
        if self.up and self._subscribed.is_set():
            try:
                await self._redis.publish(f"nova:events:{stream_id}", json.dumps(message))
                return
            except _DOWN_ERRORS:
                self.up = False
        await self._on_event(stream_id, message)

    async def _subscribe_forever(self) -> None:
        while True:
            try:
                async with self._pubsub_redis.pubsub() as pubsub:
                    await pubsub.psubscribe("nova:events:*")
                    self._subscribed.set()
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message and message.get("type") == "pmessage":
                            stream_id = str(message["channel"]).rsplit(":", 1)[-1]
                            await self._on_event(stream_id, json.loads(message["data"]))
            except _DOWN_ERRORS as exc:
                self._subscribed.clear()
                log.debug("pubsub interrupted: %s", exc)
                await asyncio.sleep(0.5)
