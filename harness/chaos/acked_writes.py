"""The acknowledged-write ledger (data-loss check for fault runs). During the run it creates
streams through the API at a steady rate and records each one the target acknowledged (2xx with
an id) or refused; after the run it reads every acknowledged stream back and records whether it
is present and unchanged. A write the target acknowledged must never be lost, whatever fault
happened in between."""

from __future__ import annotations

import json
import time

import gevent
import httpx

from harness.config.profile import Profile
from harness.load.context import UserContext
from harness.runtime.periodic import Every

CHECKED_FIELDS = ("title", "description", "region")
VERIFY_ATTEMPTS = 5


class WriteLedger:
    def __init__(self, ctx: UserContext, profile: Profile, api_base: str, token: str,
                 rate_per_s: float, region: str, run_id: str) -> None:
        self.ctx, self.profile, self.rate_per_s = ctx, profile, rate_per_s
        self.region, self.run_id = region, run_id
        self.api = httpx.Client(base_url=api_base, timeout=5.0,
                                headers={"Authorization": f"Bearer {token}"})
        self.acked: dict[str, dict[str, str]] = {}
        self.written = 0
        self.every = Every(1.0 / rate_per_s, self._write_next, first_after_s=0.0)

    def start(self) -> None:
        self.every.start()

    def stop(self) -> None:
        self.every.stop()

    def _write_next(self) -> None:
        self.written += 1
        self._write(self.written)

    def _write(self, number: int) -> None:
        payload = self.profile.create_payload(f"ledger-{self.run_id[-6:]}-{number}",
                                              f"acknowledged write #{number}", self.region)
        started = time.time()
        try:
            response = self.api.post(self.profile.path("create"), json=payload)
        except httpx.HTTPError as exc:
            self.ctx.event("write_failed", ts=started, detail=type(exc).__name__)
            return
        body = _json(response)
        stream_id = self.profile.stream_field(body, "id") if response.is_success else None
        if stream_id is None:
            self.ctx.event("write_failed", ts=started, value=float(response.status_code),
                           detail=str(body.get("error", ""))[:100])
            return
        expected = {k: str(body.get(k, payload.get(k))) for k in CHECKED_FIELDS}
        self.acked[str(stream_id)] = expected
        self.ctx.event("write_acked", str(stream_id), ts=started,
                       value=(time.time() - started) * 1000, detail=json.dumps(expected))

    def verify(self) -> dict[str, int]:
        """Read back every acknowledged write; returns counts by outcome."""
        outcome = {"write_verified": 0, "write_lost": 0, "write_changed": 0}
        for stream_id, expected in self.acked.items():
            kind, detail = self._check(stream_id, expected)
            outcome[kind] += 1
            self.ctx.event(kind, stream_id, detail=detail)
        self.api.close()
        return outcome

    def _check(self, stream_id: str, expected: dict[str, str]) -> tuple[str, str | None]:
        last = ""
        for attempt in range(VERIFY_ATTEMPTS):
            try:
                response = self.api.get(self.profile.path("get", stream_id))
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 404:
                    return "write_lost", "404 after acknowledgement"
                if response.is_success:
                    body = _json(response)
                    changed = {k: body.get(k) for k, v in expected.items()
                               if str(body.get(k)) != v}
                    return ("write_changed", json.dumps(changed)) if changed else \
                        ("write_verified", None)
                last = f"HTTP {response.status_code}"
            gevent.sleep(0.5 * (attempt + 1))
        return "write_lost", f"not readable after {VERIFY_ATTEMPTS} attempts: {last}"


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
