"""Open-model API clients: arrivals at a fixed rate, each an operation picked by weight. The
intended start of every request is recorded, and a request that starts late (the generator could
not keep up) is counted, so a slow generator is not mistaken for a slow target."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group
from geventhttpclient import URL, HTTPClient
from locust import User, constant, task

from harness.users.context import UserContext

LATE_AFTER_S = 0.05
# Streams this client created and may get or delete later; older ones are forgotten.
MAX_REMEMBERED_STREAMS = 1000


class ApiOperations:
    """The REST operations of the mix, spoken through the profile."""

    def __init__(self, ctx: UserContext) -> None:
        assert ctx.plan is not None and ctx.profile is not None
        self.ctx, self.plan, self.profile = ctx, ctx.plan, ctx.profile
        base = URL(self.plan.api_base)
        self.client = HTTPClient.from_url(base, concurrency=50, network_timeout=10,
                                          connection_timeout=5)
        self.prefix = base.path.rstrip("/")
        self.created: list[str] = []
        self.table: dict[str, Callable[[], tuple[str, str, str, Any, set[int]]]] = {
            "list_active": self._list_active, "get": self._get, "create": self._create,
            "delete": self._delete, "metrics": self._metrics, "health": self._health,
            "get_unknown": self._get_unknown,
        }

    def headers(self) -> dict[str, str]:
        token = random.choice(self.plan.api_tokens)
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def _list_active(self) -> tuple[str, str, str, Any, set[int]]:
        limit = self.profile.listing.limit_param
        return "GET", "list_active", f"{self.profile.path('list_active')}?{limit}=20", None, {200}

    def _get(self) -> tuple[str, str, str, Any, set[int]]:
        stream_id = random.choice([s.id for s in self.plan.streams] + self.created[-20:])
        return "GET", "get", self.profile.path("get", stream_id), None, {200}

    def _create(self) -> tuple[str, str, str, Any, set[int]]:
        body = self.profile.create_payload("api-client", "created by nova-harness",
                                           self.plan.region)
        return "POST", "create", self.profile.path("create"), body, {200, 201}

    def _delete(self) -> tuple[str, str, str, Any, set[int]]:
        if not self.created or self.profile.paths.delete is None:
            return self._create()
        return "DELETE", "delete", self.profile.path("delete", self.created.pop(0)), None, \
            {200, 204}

    def _metrics(self) -> tuple[str, str, str, Any, set[int]]:
        return "GET", "metrics", self.profile.path("metrics"), None, {200}

    def _health(self) -> tuple[str, str, str, Any, set[int]]:
        return "GET", "health", self.profile.path("health"), None, {200}

    def _get_unknown(self) -> tuple[str, str, str, Any, set[int]]:
        # An expected error: the profile's status for an unknown stream counts as success.
        return "GET", "get_unknown", self.profile.path("get", str(uuid.uuid4())), None, \
            {self.profile.errors.unknown_stream}

    def run(self, operation: str, intended_ts: float) -> None:
        method, name, path, body, expected = self.table[operation]()
        started = time.time()
        status, size, error = None, 0, None
        try:
            payload = json.dumps(body).encode() if body is not None else None
            response = self.client.request(method, self.prefix + path, body=payload,
                                           headers=self.headers())
            content = response.read()
            status, size = response.status_code, len(content)
            if name == "create" and status in expected:
                created_id = self.profile.stream_field(json.loads(content), "id")
                if created_id:
                    self.created.append(str(created_id))
                    if len(self.created) > MAX_REMEMBERED_STREAMS:  # a mix without deletes
                        del self.created[0]
        except (OSError, gevent.Timeout, ValueError) as exc:
            error = type(exc).__name__
        latency_ms = (time.time() - started) * 1000
        ok = status in expected
        if not ok and error is None:
            error = f"HTTP {status}"
        self.ctx.sample(started, "http", name, latency_ms, ok, status, error, size,
                        user="api", intended_ts=intended_ts)


class ApiArrivalsUser(User):
    """An arrival clock running the plan's rate divided among its `api_clocks` (one per worker
    process with --workers, so no single worker carries the whole open-model rate). Each
    arrival runs in its own greenlet."""

    abstract = True
    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        ctx: UserContext = self.environment.nova
        while ctx.plan is None:
            gevent.sleep(0.1)
        self.ctx = ctx
        self.ops = ApiOperations(ctx)
        mix = {k: v for k, v in ctx.plan.api_mix.items() if v > 0}
        self.names, self.weights = list(mix), list(mix.values())

    @task
    def arrivals(self) -> None:
        """The arrival clock; runs until Locust stops the user."""
        assert self.ctx.plan is not None
        rate = self.ctx.plan.api_rate_per_s / max(1, self.ctx.plan.api_clocks)
        if rate <= 0:
            gevent.sleep(3600)
            return
        # Clocks on different workers start out of step, so their arrivals interleave.
        started, n = time.time() + random.random() / rate, 0
        in_flight = Group()
        try:
            while True:
                intended = started + n / rate
                delay = intended - time.time()
                if delay > 0:
                    gevent.sleep(delay)
                elif -delay > LATE_AFTER_S:
                    self.ctx.late_sends += 1
                operation = random.choices(self.names, self.weights)[0]
                in_flight.spawn(self.ops.run, operation, intended)
                n += 1
        finally:
            in_flight.kill(block=True, timeout=2)
            self.ops.client.close()
