"""Stream lifecycle shared by the REST routes, the RTMP webhooks and the viewer socket."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from stack import malloc
from stack.service.analytics import EventPublisher
from stack.service.apierror import unavailable
from stack.service.clock import rfc3339, utcnow
from stack.service.config import Settings
from stack.service.database import Database, DatabaseDown, StreamRow
from stack.service.live import LiveState
from stack.service.metrics import ServiceMetrics
from stack.service.tokens import Principal, TokenVerifier
from stack.service.viewers import ViewerHub

log = logging.getLogger("nova.core")


def row_to_cache(row: StreamRow) -> str:
    """Serialise a row for the Redis cache that serves reads while PostgreSQL is down."""
    values = asdict(row)
    for name, value in values.items():
        if isinstance(value, uuid.UUID):
            values[name] = str(value)
        elif isinstance(value, datetime):
            values[name] = value.isoformat()
        elif isinstance(value, tuple):
            values[name] = list(value)
    return json.dumps(values)


def row_from_cache(text: str) -> StreamRow:
    values: dict[str, Any] = json.loads(text)
    for name in ("id", "broadcaster_id"):
        values[name] = uuid.UUID(values[name])
    for name in ("created_at", "started_at", "ended_at"):
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["tags"] = tuple(values["tags"])
    return StreamRow(**values)


class NovaService:
    """Everything a request handler needs, wired once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.db = Database(settings)
        self.live = LiveState(settings, self._on_event)
        self.hub = ViewerHub(settings, self.live, self.metrics)
        self.verifier = TokenVerifier(settings)
        self.analytics = EventPublisher(settings, self.metrics)
        self._background: set[asyncio.Task[None]] = set()
        self._trimmer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.start()
        await self.live.start(self._active_snapshot)
        await self.live.reset_instance()
        self.hub.start()
        self.analytics.start()
        if self.settings.malloc_trim_s > 0:
            self._trimmer = asyncio.create_task(self._trim_forever(self.settings.malloc_trim_s))

    async def _trim_forever(self, interval_s: float) -> None:
        """Hand glibc's free pages back every `interval_s`: a soak judges this service's
        memory, and pages malloc keeps after viewers leave would read as a leak."""
        while True:
            await asyncio.sleep(interval_s)
            malloc.trim()

    async def close(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
        await self.hub.close()
        await self.analytics.close()
        await self.live.close()
        await self.db.close()

    async def _on_event(self, stream_id: str, message: dict[str, Any]) -> None:
        await self.hub.deliver(stream_id, message)

    async def _active_snapshot(self) -> list[tuple[str, str]]:
        return [(str(r.id), row_to_cache(r)) for r in await self.db.active_ids()]

    def spawn(self, coro: Any) -> None:
        """Run best-effort bookkeeping (analytics rows) without holding up the caller."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def best_effort(self, coro: Any) -> None:
        try:
            await coro
        except DatabaseDown as exc:
            log.debug("bookkeeping skipped, database down: %s", exc)

    # -- reading -------------------------------------------------------------------------

    async def find_stream(self, stream_id: uuid.UUID) -> StreamRow | None:
        """The stream row from PostgreSQL, or from the Redis cache while PostgreSQL is down."""
        try:
            return await self.db.get_stream(stream_id)
        except DatabaseDown:
            cached = await self.live.cached_stream(str(stream_id))
            if cached is None:
                raise unavailable("database") from None
            return row_from_cache(cached)

    async def stream_json(self, row: StreamRow, viewer: Principal | None) -> dict[str, Any]:
        """The contract's Stream object, with live counts; `rtmp_key` for owner or admin only."""
        if row.status == "active":
            viewer_count, peak = await self.live.counts(str(row.id))
            peak = max(peak, row.peak_viewers)
        else:
            viewer_count = 0
            peak = row.peak_viewers
        body: dict[str, Any] = {
            "id": str(row.id),
            "broadcaster_id": str(row.broadcaster_id),
            "title": row.title,
            "description": row.description,
            "status": row.status,
            "region": row.region,
            "tags": list(row.tags),
            "thumbnail_url": row.thumbnail_url,
            "rtmp_url": self.settings.rtmp_url,
            "viewer_count": viewer_count,
            "peak_viewers": peak,
            "duration_seconds": duration_seconds(row),
            "created_at": rfc3339(row.created_at),
            "started_at": rfc3339(row.started_at),
            "ended_at": rfc3339(row.ended_at),
            "hls_playlist_url": f"{self.settings.hls_base}/hls/{row.rtmp_key}/index.m3u8",
            "metadata": {"quality": row.quality, "fps": row.fps,
                         "bitrate_kbps": row.bitrate_kbps},
        }
        if viewer is not None and (viewer.is_admin or viewer.user_id == row.broadcaster_id):
            body["rtmp_key"] = row.rtmp_key
        return body

    # -- lifecycle -----------------------------------------------------------------------

    async def create_stream(self, owner: Principal, fields: dict[str, Any]) -> StreamRow:
        row = StreamRow(
            id=uuid.uuid4(), broadcaster_id=owner.user_id, title=fields["title"],
            description=fields["description"], status="scheduled", region=fields["region"],
            tags=tuple(fields["tags"]), thumbnail_url=fields["thumbnail_url"],
            rtmp_key=f"sk_{secrets.token_urlsafe(24)}", quality="720p", fps=30,
            bitrate_kbps=2500, peak_viewers=0, final_viewer_count=None, end_reason=None,
            publisher_client_id=None, created_at=utcnow(), started_at=None, ended_at=None,
        )
        try:
            stored = await self.db.insert_stream(row)
        except DatabaseDown:
            raise unavailable("database") from None
        await self.live.cache_stream(str(stored.id), row_to_cache(stored), active=False)
        self.spawn(self.best_effort(self.db.record_event(stored.id, "stream_created", {})))
        self.analytics.emit("stream_created", str(stored.id))
        return stored

    async def activate(self, rtmp_key: str, client_id: str) -> StreamRow | None:
        """The on_publish webhook: scheduled → active. None: the key may not publish."""
        row = await self.db.activate(rtmp_key, client_id)
        if row is None:
            if self.settings.reconnect_grace_s > 0:
                returned = await self.db.publisher_returned(rtmp_key, client_id)
                if returned is not None:
                    log.info("publisher of stream %s back within the grace", returned.id)
                    return returned
            existing = await self.db.get_stream_by_key(rtmp_key)
            # A reconnect (or a duplicate publisher, which nginx itself refuses) of a live stream.
            return existing if existing and existing.status == "active" else None
        await self.live.cache_stream(str(row.id), row_to_cache(row), active=True)
        self.spawn(self.best_effort(self.db.record_event(row.id, "stream_started",
                                                         {"client_id": client_id})))
        self.analytics.emit("stream_started", str(row.id))
        await self.live.publish(str(row.id), {"event": "stream_started",
                                              "data": started_data(row)})
        return row

    async def publisher_lost(self, row: StreamRow, client_id: str) -> bool:
        """The done webhook of the live publisher: without a reconnect grace the stream ends
        (connection_lost); with one it ends only if no publisher took the key back within it
        (checked in the database, so any instance may see the republish). True: ended now."""
        if self.settings.reconnect_grace_s <= 0:
            await self.end_stream(row, "connection_lost")
            return True
        if await self.db.publisher_left(row.id, client_id):
            self.spawn(self.best_effort(
                self._end_unless_republished(row.id, self.settings.reconnect_grace_s)))
        return False

    async def _end_unless_republished(self, stream_id: uuid.UUID, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        row = await self.db.get_stream(stream_id)
        if row is not None and row.status == "active" and not row.publisher_client_id:
            await self.end_stream(row, "connection_lost")

    async def end_stream(self, row: StreamRow, reason: str) -> StreamRow:
        """Any state → ended; viewers get `stream_ended` and are closed. Idempotent."""
        viewers, peak = await self.live.counts(str(row.id))
        ended = await self.db.end(row.id, reason, viewers, max(peak, row.peak_viewers))
        if ended is None:
            return row
        seconds = duration_seconds(ended)
        self.metrics.stream_duration.observe(seconds)
        self.metrics.viewers_total.observe(viewers)
        await self.live.cache_stream(str(ended.id), row_to_cache(ended), active=False)
        self.spawn(self.best_effort(self.db.record_event(ended.id, "stream_ended",
                                                         {"reason": reason})))
        self.analytics.emit("stream_ended", str(ended.id))
        await self.live.publish(str(ended.id), {"event": "stream_ended", "data": {
            "duration_seconds": seconds, "peak_viewers": ended.peak_viewers,
            "final_viewer_count": viewers, "reason": reason,
        }})
        await self.live.forget_stream(str(ended.id))
        return ended

    async def change_quality(self, row: StreamRow, quality: str, bitrate_kbps: int,
                             fps: int) -> StreamRow:
        updated = await self.db.set_quality(row.id, quality, bitrate_kbps, fps)
        if updated is None:
            return row
        await self.live.cache_stream(str(updated.id), row_to_cache(updated),
                                     active=updated.status == "active")
        await self.live.publish(str(row.id), {"event": "quality_changed", "data": {
            "previous_quality": row.quality, "new_quality": quality,
            "previous_bitrate_kbps": row.bitrate_kbps, "new_bitrate_kbps": bitrate_kbps,
            "fps": fps, "reason": "broadcaster_changed",
        }})
        return updated


def started_data(row: StreamRow) -> dict[str, Any]:
    """The `stream_started` event's fields."""
    return {"broadcaster_id": str(row.broadcaster_id), "title": row.title,
            "description": row.description, "quality": row.quality, "fps": row.fps,
            "bitrate_kbps": row.bitrate_kbps}


def duration_seconds(row: StreamRow) -> int:
    """Whole seconds the stream has been (or was) active: Nova's contract types it integer."""
    if row.started_at is None:
        return 0
    end = row.ended_at or utcnow()
    return int((end - row.started_at).total_seconds())
