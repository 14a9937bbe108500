"""What the target says about the run's streams, for the §14 consistency checks: every few
seconds each stream's viewer count from the API (`viewer_count_api` events), and after the
publishers stop, each stream read back (`stream_readback`: metadata, status, timestamps) to
compare with what the harness sent and saw."""

from __future__ import annotations

import json
import time
from typing import Any

import gevent
import httpx

from harness.config.profile import Profile
from harness.load.context import UserContext
from harness.runtime.periodic import Every

READBACK_FIELDS = ("title", "description", "region", "created_at", "started_at", "ended_at")
READBACK_WAIT_S = 5.0


class StreamAudit:
    def __init__(self, ctx: UserContext, profile: Profile, api_base: str, token: str,
                 stream_ids: list[str], interval_s: float = 2.0) -> None:
        self.ctx, self.profile, self.stream_ids = ctx, profile, stream_ids
        self.interval_s = interval_s
        self.api = httpx.Client(base_url=api_base, timeout=5.0,
                                headers={"Authorization": f"Bearer {token}"})
        self.every = Every(interval_s, self._poll_all, first_after_s=0.0)

    def start(self) -> None:
        self.every.start()

    def stop(self) -> None:
        self.every.stop()

    def close(self) -> None:
        self.stop()
        self.api.close()

    def _poll_all(self) -> None:
        for stream_id in self.stream_ids:
            self._poll_count(stream_id)

    def _poll_count(self, stream_id: str) -> None:
        asked = time.time()
        body = self._get(stream_id)
        count = self.profile.stream_field(body, "viewers") if body else None
        # A fault (service down) is no reading, not a wrong one.
        if isinstance(count, int | float) and self.profile.status_of(body) == "active":
            self.ctx.event("viewer_count_api", stream_id, ts=asked, value=float(count))

    def _get(self, stream_id: str) -> dict[str, Any]:
        try:
            response = self.api.get(self.profile.path("get", stream_id))
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def read_back(self) -> None:
        """After the publishers stopped: each stream once it reads `ended` (or after
        READBACK_WAIT_S, as it is then)."""
        self.stop()
        deadline = time.time() + READBACK_WAIT_S
        pending = list(self.stream_ids)
        bodies: dict[str, dict[str, Any]] = {}
        while pending and time.time() < deadline:
            for stream_id in list(pending):
                bodies[stream_id] = self._get(stream_id)
                if self.profile.status_of(bodies[stream_id]) == "ended":
                    pending.remove(stream_id)
            if pending:
                gevent.sleep(0.25)
        for stream_id in self.stream_ids:
            body = bodies.get(stream_id) or self._get(stream_id)
            seen = {name: self.profile.stream_field(body, name) for name in READBACK_FIELDS}
            seen["status"] = self.profile.status_of(body) if body else "unreadable"
            self.ctx.event("stream_readback", stream_id, detail=json.dumps(seen))
