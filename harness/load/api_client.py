"""Open-model API clients: arrivals at a fixed rate, each an operation picked by weight. The
intended start of every request is recorded, and a request that starts late (the generator could
not keep up) is counted, so a slow generator is not mistaken for a slow target."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pool import Group
from geventhttpclient import URL, HTTPClient
from locust import User, constant, task

from harness.load.context import UserContext
from records.schema import HTTP

LATE_AFTER_S = 0.05
# Streams this client created and may get or delete later; older ones are forgotten.
MAX_REMEMBERED_STREAMS = 1000


@dataclass(frozen=True)
class Call:
    """One request of the mix: what to send, with which token, and which answers are right."""

    method: str
    name: str
    path: str
    body: Any
    expected: set[int]
    token: str


class ApiOperations:
    """The REST operations of the mix, spoken through the profile. A stream this client
    created is deleted with the token that created it: the contract lets only its owner (or
    an admin) end it, and a 403 for someone else's stream is the target being right."""

    def __init__(self, ctx: UserContext) -> None:
        assert ctx.plan is not None and ctx.profile is not None
        self.ctx, self.plan, self.profile = ctx, ctx.plan, ctx.profile
        base = URL(self.plan.api_base)
        self.client = HTTPClient.from_url(base, concurrency=50, network_timeout=10,
                                          connection_timeout=5)
        self.prefix = base.path.rstrip("/")
        self.created: list[tuple[str, str]] = []  # (stream id, the token that created it)
        self.table: dict[str, Callable[[], Call]] = {
            "list_active": self._list_active, "get": self._get, "create": self._create,
            "delete": self._delete, "metrics": self._metrics, "health": self._health,
            "get_unknown": self._get_unknown,
        }

    def _call(self, method: str, name: str, path: str, expected: set[int],
              body: Any = None, token: str | None = None) -> Call:
        return Call(method, name, path, body, expected,
                    token or random.choice(self.plan.api_tokens))

    def _list_active(self) -> Call:
        limit = self.profile.listing.limit_param
        return self._call("GET", "list_active", f"{self.profile.path('list_active')}?{limit}=20",
                          {200})

    def _get(self) -> Call:
        stream_id = random.choice([s.id for s in self.plan.streams] +
                                  [created for created, _ in self.created[-20:]])
        return self._call("GET", "get", self.profile.path("get", stream_id), {200})

    def _create(self) -> Call:
        body = self.profile.create_payload("api-client", "created by nova-harness",
                                           self.plan.region)
        return self._call("POST", "create", self.profile.path("create"), {200, 201}, body)

    def _delete(self) -> Call:
        if not self.created or self.profile.paths.delete is None:
            return self._create()
        stream_id, owner_token = self.created.pop(0)
        return self._call("DELETE", "delete", self.profile.path("delete", stream_id),
                          {200, 204}, token=owner_token)

    def _metrics(self) -> Call:
        return self._call("GET", "metrics", self.profile.path("metrics"), {200})

    def _health(self) -> Call:
        return self._call("GET", "health", self.profile.path("health"), {200})

    def _get_unknown(self) -> Call:
        # An expected error: the profile's status for an unknown stream counts as success.
        return self._call("GET", "get_unknown", self.profile.path("get", str(uuid.uuid4())),
                          {self.profile.errors.unknown_stream})

    def run(self, operation: str, intended_ts: float) -> None:
        call = self.table[operation]()
        started = time.time()
        status, size, error = None, 0, None
        try:
            payload = json.dumps(call.body).encode() if call.body is not None else None
            headers = {"Authorization": f"Bearer {call.token}",
                       "Content-Type": "application/json"}
            response = self.client.request(call.method, self.prefix + call.path, body=payload,
                                           headers=headers)
            content = response.read()
            status, size = response.status_code, len(content)
            if call.name == "create" and status in call.expected:
                self._remember(self.profile.stream_field(json.loads(content), "id"), call.token)
        except (OSError, gevent.Timeout, ValueError) as exc:
            error = type(exc).__name__
        latency_ms = (time.time() - started) * 1000
        ok = status in call.expected
        if not ok and error is None:
            error = f"HTTP {status}"
        self.ctx.sample(started, HTTP, call.name, latency_ms, ok, status, error, size,
                        user="api", intended_ts=intended_ts)

    def _remember(self, created_id: object, token: str) -> None:
        if created_id:
            self.created.append((str(created_id), token))
            if len(self.created) > MAX_REMEMBERED_STREAMS:  # a mix without deletes
                del self.created[0]


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
