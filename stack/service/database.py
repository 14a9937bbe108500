"""The PostgreSQL side: a pool that survives the server going away, and the stream queries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from stack.service.config import Settings
from stack.service.migrate import migrate_up

log = logging.getLogger("nova.db")

# What a dead, restarting or paused server raises through asyncpg.
_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # Backends of a killed postmaster end with 57P02.
    asyncpg.CrashShutdownError,
    # Releasing a connection whose server died mid-query: the pool's reset query finds the
    # protocol still in the dead query's state (measured: 4 of 20 viewers asking for stream
    # info at the moment PostgreSQL was SIGKILLed got this, and their sockets closed 1011).
    asyncpg.InternalClientError,
    asyncpg.ReadOnlySQLTransactionError,
    # During a failover no listed host is a primary yet.
    asyncpg.TargetServerAttributeNotMatched,
)


class DatabaseDown(Exception):
    """PostgreSQL cannot serve this request right now."""


@dataclass(frozen=True)
class StreamRow:
    """One row of `streams`, as stored."""

    id: uuid.UUID
    broadcaster_id: uuid.UUID
    title: str
    description: str
    status: str
    region: str
    tags: tuple[str, ...]
    thumbnail_url: str | None
    rtmp_key: str
    quality: str
    fps: int
    bitrate_kbps: int
    peak_viewers: int
    final_viewer_count: int | None
    end_reason: str | None
    publisher_client_id: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> StreamRow:
        values = dict(record)
        values["tags"] = tuple(values["tags"] or ())
        return cls(**values)


_COLUMNS = ", ".join(StreamRow.__dataclass_fields__)


class Database:
    """An asyncpg pool created (and re-created) in the background; queries raise DatabaseDown
    while the server is unreachable instead of hanging the request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self.migrated = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pool:
            await self._pool.close()

    async def _connect_forever(self) -> None:
        delay_s = 0.1
        while self._pool is None:
            try:
                pool = await asyncpg.create_pool(
                    self._settings.database_url,
                    # A pool that keeps its connections: one that grows under load and
                    # drops idle connections after 5 minutes makes PostgreSQL's memory rise
                    # and fall with its backend count (~3-4 MB each), which a soak read as a
                    # 10 MB/h trend on a healthy stack.
                    min_size=self._settings.db_pool_max,
                    max_size=self._settings.db_pool_max,
                    max_inactive_connection_lifetime=0,
                    timeout=self._settings.db_timeout_s,
                    command_timeout=self._settings.db_timeout_s,
                )
                if self._settings.migrate_on_start:
                    async with pool.acquire() as conn:
                        applied = await migrate_up(conn)
                        if applied:
                            log.info("applied migrations %s", applied)
                self._pool = pool
                self.migrated.set()
                log.info("database pool ready")
            except _DOWN_ERRORS as exc:
                log.warning("database not reachable (%s); retrying in %.1fs", exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; DatabaseDown when the server is unreachable."""
        if self._pool is None:
            raise DatabaseDown("database pool not ready")
        try:
            async with self._pool.acquire(timeout=self._settings.db_timeout_s) as conn:
                yield conn
        except _DOWN_ERRORS as exc:
            raise DatabaseDown(str(exc) or type(exc).__name__) from exc

    async def ping_ms(self) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")
        return (loop.time() - started) * 1000

    # -- streams -------------------------------------------------------------------------

    async def insert_stream(self, row: StreamRow) -> StreamRow:
        values = [getattr(row, name) for name in StreamRow.__dataclass_fields__]
        values[list(StreamRow.__dataclass_fields__).index("tags")] = list(row.tags)
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        async with self.connection() as conn:
            record = await conn.fetchrow(
                f"INSERT INTO streams ({_COLUMNS}) VALUES ({placeholders}) RETURNING {_COLUMNS}",
                *values,
            )
        return StreamRow.from_record(record)

    async def get_stream(self, stream_id: uuid.UUID) -> StreamRow | None:
        async with self.connection() as conn:
            record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM streams WHERE id = $1",
                                         stream_id)
        return StreamRow.from_record(record) if record else None

    async def get_stream_by_key(self, rtmp_key: str) -> StreamRow | None:
        async with self.connection() as conn:
            record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM streams WHERE rtmp_key = $1",
                                         rtmp_key)
        return StreamRow.from_record(record) if record else None

    async def list_active(self, limit: int, offset: int,
                          region: str | None) -> tuple[list[StreamRow], int]:
        where = "status = 'active' AND ($1::text IS NULL OR region = $1)"
        async with self.connection() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM streams WHERE {where}", region)
            records = await conn.fetch(
                f"SELECT {_COLUMNS} FROM streams WHERE {where} "
                "ORDER BY started_at DESC, id LIMIT $2 OFFSET $3",
                region, limit, offset,
            )
        return [StreamRow.from_record(r) for r in records], int(total)

    async def active_ids(self) -> list[StreamRow]:
        async with self.connection() as conn:
            records = await conn.fetch(f"SELECT {_COLUMNS} FROM streams WHERE status = 'active'")
        return [StreamRow.from_record(r) for r in records]

    async def count_active_by_region(self) -> dict[str, int]:
        async with self.connection() as conn:
            records = await conn.fetch(
                "SELECT region, count(*) AS n FROM streams WHERE status = 'active' GROUP BY region"
            )
        return {r["region"]: int(r["n"]) for r in records}

    async def activate(self, rtmp_key: str, client_id: str) -> StreamRow | None:
        """scheduled → active; None when the key is not a scheduled stream."""
        async with self.connection() as conn:
            record = await conn.fetchrow(
                f"UPDATE streams SET status = 'active', started_at = now(), "
                f"publisher_client_id = $2 WHERE rtmp_key = $1 AND status = 'scheduled' "
                f"RETURNING {_COLUMNS}",
                rtmp_key, client_id,
            )
        return StreamRow.from_record(record) if record else None

    async def publisher_left(self, stream_id: uuid.UUID, client_id: str) -> bool:
        """An active stream's live publisher went away (reconnect grace): True when it was
        that publisher's stream."""
        async with self.connection() as conn:
            status = await conn.execute(
                "UPDATE streams SET publisher_client_id = NULL WHERE id = $1 AND "
                "status = 'active' AND coalesce(publisher_client_id, '') IN ('', $2)",
                stream_id, client_id)
        return str(status).endswith(" 1")

    async def publisher_returned(self, rtmp_key: str, client_id: str) -> StreamRow | None:
        """The key of an active stream whose publisher left is published again: the new
        publisher takes it over. None when it is not such a stream."""
        async with self.connection() as conn:
            record = await conn.fetchrow(
                f"UPDATE streams SET publisher_client_id = $2 WHERE rtmp_key = $1 AND "
                f"status = 'active' AND publisher_client_id IS NULL RETURNING {_COLUMNS}",
                rtmp_key, client_id)
        return StreamRow.from_record(record) if record else None

    async def end(self, stream_id: uuid.UUID, reason: str, final_viewers: int,
                  peak_viewers: int) -> StreamRow | None:
        """Mark a not-yet-ended stream ended; None when it had already ended."""
        async with self.connection() as conn:
            record = await conn.fetchrow(
                f"UPDATE streams SET status = 'ended', ended_at = now(), end_reason = $2, "
                f"final_viewer_count = $3, peak_viewers = GREATEST(peak_viewers, $4) "
                f"WHERE id = $1 AND status <> 'ended' RETURNING {_COLUMNS}",
                stream_id, reason, final_viewers, peak_viewers,
            )
        return StreamRow.from_record(record) if record else None

    async def set_quality(self, stream_id: uuid.UUID, quality: str, bitrate_kbps: int,
                          fps: int) -> StreamRow | None:
        async with self.connection() as conn:
            record = await conn.fetchrow(
                f"UPDATE streams SET quality = $2, bitrate_kbps = $3, fps = $4 "
                f"WHERE id = $1 AND status <> 'ended' RETURNING {_COLUMNS}",
                stream_id, quality, bitrate_kbps, fps,
            )
        return StreamRow.from_record(record) if record else None

    async def record_event(self, stream_id: uuid.UUID, event: str,
                           data: dict[str, Any]) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO stream_events (stream_id, event, data) VALUES ($1, $2, $3::jsonb)",
                stream_id, event, json.dumps(data),
            )

    async def open_viewer_session(self, stream_id: uuid.UUID, viewer_id: uuid.UUID,
                                  session_id: uuid.UUID, instance_id: str,
                                  joined_at: datetime) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO viewer_sessions (stream_id, viewer_id, session_id, instance_id, "
                "joined_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO NOTHING",
                stream_id, viewer_id, session_id, instance_id, joined_at,
            )

    async def close_viewer_sessions(self, session_ids: Sequence[uuid.UUID],
                                    left_at: datetime) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "UPDATE viewer_sessions SET left_at = $2 WHERE session_id = ANY($1::uuid[])",
                list(session_ids), left_at,
            )
