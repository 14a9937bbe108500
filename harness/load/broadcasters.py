"""Broadcasters of a run: create each stream through the API (per the profile), publish the
pre-encoded clip with ffmpeg, record publish start, time until the API says `active`, and the
end. A publisher that dies mid-run (a fault cut it off, nginx went away) reconnects the way an
encoder would, after any hold a fault asked for; its PIDs are listed in `broadcasters.json` for
the fault actions. All stop on exit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import httpx

from harness.config.profile import Profile
from harness.config.scenario import ClipSettings
from harness.errors import TargetUnreachable
from harness.load.context import StreamPlan, UserContext
from harness.load.publisher import ClipSpec, Publisher, ensure_clip
from records.recorder import atomic_write_json
from records.schema import RTMP_PUBLISH


def encoded_clip(settings: ClipSettings) -> Path:
    """The scenario's clip, encoded on first use and cached (broadcast.ensure_clip). A run
    asks for it before its load starts: on a machine without the cache the encoding takes
    ~1.5 CPU-seconds, which during the hold would be measured as the target's latency."""
    return ensure_clip(ClipSpec(**settings.model_dump()))


@dataclass
class Broadcast:
    plan: StreamPlan
    publisher: Publisher | None = None
    state: str = "created"  # created | publishing | active | reconnecting | failed | stopped
    active_after_s: float | None = None
    down_since: float | None = None
    next_attempt: float = 0.0
    attempts: int = 0


RECONNECT_EVERY_S = 2.0
RECONNECT_GIVE_UP_S = 60.0
# An ffmpeg publisher's start costs 0.15-0.27 s of CPU (loading its libraries); five started
# at once beside the reference stack on 2 cores took the host to 187 % for a second and the
# service's round trips to 200-380 ms (CI demo run of 2026-11-29; 5 ms before and after).
# Real broadcasters do not start in step: starts are spread PUBLISH_STEP_S apart, at most
# PUBLISH_SPREAD_MAX_S in all.
PUBLISH_STEP_S = 0.5
PUBLISH_SPREAD_MAX_S = 5.0


class Fleet:
    """The run's streams and their ffmpeg publishers."""

    def __init__(self, ctx: UserContext, profile: Profile, api_base: str, rtmp_url: str,
                 hls_base: str, token: str, results_dir: Path) -> None:
        self.ctx, self.profile = ctx, profile
        self.rtmp_url, self.hls_base = rtmp_url, hls_base
        self.results_dir, self.logs_dir = results_dir, results_dir / "logs"
        self.stopping = False
        self.watchdog: gevent.Greenlet[Any, Any] | None = None
        self.api = httpx.Client(base_url=api_base, timeout=10.0,
                                headers={"Authorization": f"Bearer {token}"})
        self.broadcasts: list[Broadcast] = []

    def create_streams(self, count: int, title_prefix: str, region: str) -> list[StreamPlan]:
        for index in range(count):
            asked = {"title": f"{title_prefix}-{index + 1}", "description": "load test stream",
                     "region": region}
            payload = self.profile.create_payload(**asked)
            url = f"{self.api.base_url}{self.profile.path('create').lstrip('/')}"
            try:
                response = self.api.post(self.profile.path("create"), json=payload)
            except httpx.HTTPError as exc:
                raise TargetUnreachable(f"creating a stream: POST {url} failed: {exc}",
                                        hint="is the target up, and is the URL right?") \
                    from None
            if response.status_code not in (200, 201):
                raise TargetUnreachable(f"creating a stream: POST {url} answered HTTP "
                                        f"{response.status_code}: {response.text[:200]}")
            body = response.json()
            stream_id = str(self.profile.stream_field(body, "id"))
            key = str(self.profile.stream_field(body, "key"))
            plan = StreamPlan(stream_id, key, self.profile.hls_url(self.hls_base, key, stream_id))
            self.broadcasts.append(Broadcast(plan))
            # What was asked for, to check after the run that the target kept it (§14).
            self.ctx.event("stream_created", stream_id, detail=json.dumps(asked))
        return [b.plan for b in self.broadcasts]

    def publish_all(self, clip: Path, timeout_s: float = 15.0) -> None:
        """Start every publisher pushing `clip` (from `encoded_clip`), PUBLISH_STEP_S apart,
        and wait (in parallel) until the API reports each active."""
        step_s = min(PUBLISH_STEP_S, PUBLISH_SPREAD_MAX_S / max(1, len(self.broadcasts)))
        waits = [gevent.spawn_later(number * step_s, self._publish, broadcast, clip, timeout_s)
                 for number, broadcast in enumerate(self.broadcasts)]
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
                self.ctx.sample(started, RTMP_PUBLISH, "activate",
                                broadcast.active_after_s * 1000, True, stream=broadcast.plan.id)
                return
            gevent.sleep(0.1)
        broadcast.state = "failed"
        tail = broadcast.publisher.stderr_tail(2).replace("\n", " | ")
        self.ctx.sample(started, RTMP_PUBLISH, "activate", (time.time() - started) * 1000,
                        False, error=f"not active: {tail}"[:300], stream=broadcast.plan.id)
        self.ctx.event("publish_failed", broadcast.plan.id, detail=tail[:300])

    def _status(self, stream_id: str) -> str:
        try:
            response = self.api.get(self.profile.path("get", stream_id))
        except httpx.HTTPError:
            return "unreachable"
        return self.profile.status_of(response.json()) if response.status_code == 200 else \
            f"http_{response.status_code}"

    # -- reconnects --------------------------------------------------------------------

    def watch(self) -> None:
        """Start the watchdog that reconnects publishers which died mid-run."""
        self.write_listing()
        self.watchdog = gevent.spawn(self._watch_loop)

    def _watch_loop(self) -> None:
        while not self.stopping:
            for index, broadcast in enumerate(self.broadcasts):
                self._check(index, broadcast)
            gevent.sleep(0.2)

    def _check(self, index: int, broadcast: Broadcast) -> None:
        publisher = broadcast.publisher
        if publisher is None or publisher.running or self.stopping:
            return
        now = time.time()
        if broadcast.state == "active":
            broadcast.state, broadcast.down_since, broadcast.attempts = "reconnecting", now, 0
            broadcast.next_attempt = max(now, self._hold_until(index))
            self.ctx.event("publish_interrupted", broadcast.plan.id,
                           value=float(publisher.exit_code() or 0))
            self.write_listing()
        if broadcast.state != "reconnecting" or now < broadcast.next_attempt:
            return
        down_since = broadcast.down_since or now
        # An ended stream refuses its key (contract; a target with a reconnect grace keeps
        # it active instead): one refused attempt shows it, more would only hammer the webhook.
        if (broadcast.attempts and self._status(broadcast.plan.id) == "ended") or \
                now - down_since > RECONNECT_GIVE_UP_S:
            self._give_up(broadcast, down_since)
            return
        broadcast.next_attempt = now + RECONNECT_EVERY_S
        broadcast.attempts += 1
        publisher.start()
        self.ctx.event("publish_restarted", broadcast.plan.id)
        self.write_listing()
        gevent.spawn(self._await_active, broadcast, down_since)

    def _await_active(self, broadcast: Broadcast, down_since: float) -> None:
        started = time.time()
        while time.time() - started < RECONNECT_EVERY_S and not self.stopping:
            if broadcast.publisher is None or not broadcast.publisher.running:
                return
            # Still running half a second after the publish means nginx's webhook accepted
            # it (a refused publish exits in ~0.26 s).
            if self._status(broadcast.plan.id) == "active" and time.time() - started > 0.5:
                broadcast.state = "active"
                self.write_listing()
                self.ctx.sample(down_since, RTMP_PUBLISH, "reconnect",
                                (time.time() - down_since) * 1000, True,
                                stream=broadcast.plan.id)
                return
            gevent.sleep(0.1)

    def _give_up(self, broadcast: Broadcast, down_since: float) -> None:
        status = self._status(broadcast.plan.id)
        broadcast.state = "failed"
        self.ctx.sample(down_since, RTMP_PUBLISH, "reconnect",
                        (time.time() - down_since) * 1000, False,
                        error=f"not republished after {broadcast.attempts} attempts; "
                              f"stream status {status}",
                        stream=broadcast.plan.id)
        self.write_listing()

    def _hold_until(self, index: int) -> float:
        try:
            return float(json.loads((self.results_dir / "control" /
                                     f"hold-{index}.json").read_text())["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def write_listing(self) -> None:
        """`broadcasters.json`: index, stream, PID and state of every publisher."""
        listing = [{"index": i, "stream": b.plan.id, "state": b.state,
                    "pid": b.publisher.proc.pid if b.publisher and b.publisher.proc and
                    b.publisher.running else None} for i, b in enumerate(self.broadcasts)]
        atomic_write_json(self.results_dir / "broadcasters.json", listing)

    def stop_all(self) -> None:
        self.stopping = True
        if self.watchdog is not None:
            self.watchdog.kill()
        for broadcast in self.broadcasts:
            if broadcast.publisher is not None and broadcast.publisher.running:
                code = broadcast.publisher.stop()
                broadcast.state = "stopped"
                self.ctx.event("publish_stopped", broadcast.plan.id,
                               value=float(code) if code is not None else None)
        self.api.close()

    def states(self) -> list[str]:
        return [b.state for b in self.broadcasts]
