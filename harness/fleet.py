"""Broadcasters of a run: create each stream through the API (per the profile), publish the
pre-encoded clip with ffmpeg, record publish start, time until the API says `active`, and the
end. Publishers can be stopped and restarted mid-run (interruption); all stop on exit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gevent
import httpx

from harness.broadcast import ClipSpec, Publisher, ensure_clip
from harness.errors import TargetUnreachable
from harness.profile import Profile
from harness.scenario import ClipSettings
from harness.users.context import StreamPlan, UserContext


@dataclass
class Broadcast:
    plan: StreamPlan
    publisher: Publisher | None = None
    state: str = "created"  # created | publishing | active | failed | stopped
    active_after_s: float | None = None


class Fleet:
    """The run's streams and their ffmpeg publishers."""

    def __init__(self, ctx: UserContext, profile: Profile, api_base: str, rtmp_url: str,
                 hls_base: str, token: str, logs_dir: Path) -> None:
        self.ctx, self.profile = ctx, profile
        self.rtmp_url, self.hls_base, self.logs_dir = rtmp_url, hls_base, logs_dir
        self.api = httpx.Client(base_url=api_base, timeout=10.0,
                                headers={"Authorization": f"Bearer {token}"})
        self.broadcasts: list[Broadcast] = []

    def create_streams(self, count: int, title_prefix: str, region: str) -> list[StreamPlan]:
        for index in range(count):
            payload = self.profile.create_payload(f"{title_prefix}-{index + 1}",
                                                  "load test stream", region)
            try:
                response = self.api.post(self.profile.path("create"), json=payload)
            except httpx.HTTPError as exc:
                raise TargetUnreachable(f"creating a stream failed: {exc}") from None
            if response.status_code not in (200, 201):
                raise TargetUnreachable(f"creating a stream answered HTTP "
                                        f"{response.status_code}: {response.text[:200]}")
            body = response.json()
            stream_id = str(self.profile.stream_field(body, "id"))
            key = str(self.profile.stream_field(body, "key"))
            plan = StreamPlan(stream_id, key, self.profile.hls_url(self.hls_base, key, stream_id))
            self.broadcasts.append(Broadcast(plan))
            self.ctx.event("stream_created", stream_id, detail=body.get("title"))
        return [b.plan for b in self.broadcasts]

    def publish_all(self, clip: ClipSettings, timeout_s: float = 15.0) -> None:
        """Start every publisher and wait (in parallel) until the API reports each active."""
        path = ensure_clip(ClipSpec(**clip.model_dump()))
        waits = [gevent.spawn(self._publish, b, path, timeout_s) for b in self.broadcasts]
        gevent.joinall(waits)

    def _publish(self, broadcast: Broadcast, clip: Path, timeout_s: float) -> None:
        broadcast.publisher = Publisher(self.rtmp_url, broadcast.plan.key, clip,
                                        self.logs_dir / f"ffmpeg-{broadcast.plan.id[:8]}.log")
        broadcast.publisher.start()
        started = time.time()
        broadcast.state = "publishing"
        self.ctx.event("publish_started", broadcast.plan.id, ts=started)
        while time.time() - started < timeout_s:
            if not broadcast.publisher.running:
                break
            if self._status(broadcast.plan.id) == "active":
                broadcast.state = "active"
                broadcast.active_after_s = time.time() - started
                self.ctx.event("stream_active_api", broadcast.plan.id,
                               value=broadcast.active_after_s)
                self.ctx.sample(started, "rtmp_publish", "activate",
                                broadcast.active_after_s * 1000, True, stream=broadcast.plan.id)
                return
            gevent.sleep(0.1)
        broadcast.state = "failed"
        tail = broadcast.publisher.stderr_tail(2).replace("\n", " | ")
        self.ctx.sample(started, "rtmp_publish", "activate", (time.time() - started) * 1000,
                        False, error=f"not active: {tail}"[:300], stream=broadcast.plan.id)
        self.ctx.event("publish_failed", broadcast.plan.id, detail=tail[:300])

    def _status(self, stream_id: str) -> str:
        try:
            response = self.api.get(self.profile.path("get", stream_id))
        except httpx.HTTPError:
            return "unreachable"
        return self.profile.status_of(response.json()) if response.status_code == 200 else \
            f"http_{response.status_code}"

    def interrupt(self, index: int, seconds: float) -> None:
        """Stop one publisher for `seconds`, then start it again."""
        broadcast = self.broadcasts[index]
        if broadcast.publisher is None:
            return
        broadcast.publisher.stop()
        self.ctx.event("publish_interrupted", broadcast.plan.id, value=seconds)
        gevent.sleep(seconds)
        broadcast.publisher.start()
        self.ctx.event("publish_restarted", broadcast.plan.id)

    def stop_all(self) -> None:
        for broadcast in self.broadcasts:
            if broadcast.publisher is not None and broadcast.publisher.running:
                code = broadcast.publisher.stop()
                broadcast.state = "stopped"
                self.ctx.event("publish_stopped", broadcast.plan.id,
                               value=float(code) if code is not None else None)
        self.api.close()

    def states(self) -> list[str]:
        return [b.state for b in self.broadcasts]
