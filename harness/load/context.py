"""What users share with the run: the plan (streams, tokens, endpoints, profile) and the sink
their rows go to. On a worker the sink ships batches to the master over Locust messaging."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.config.profile import Profile
from records.schema import EventRow, RowSink, SampleRow


@dataclass(frozen=True)
class StreamPlan:
    id: str
    key: str
    hls_url: str


@dataclass(frozen=True)
class RunPlan:
    """Everything a user needs, serialisable so the master can send it to workers."""

    api_base: str
    ws_base: str
    profile: dict[str, Any]
    streams: tuple[StreamPlan, ...]
    viewer_tokens: tuple[str, ...]
    api_tokens: tuple[str, ...]
    hls_share: float
    info_interval_s: float
    reconnect: bool
    api_rate_per_s: float
    api_mix: dict[str, float]
    region: str
    ws_client: str = "fast"
    # Arrival clocks sharing api_rate_per_s (one per worker process with --workers).
    api_clocks: int = 1

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> RunPlan:
        streams = tuple(StreamPlan(**s) for s in data["streams"])
        return cls(**{**data, "streams": streams, "viewer_tokens": tuple(data["viewer_tokens"]),
                      "api_tokens": tuple(data["api_tokens"])})


@dataclass
class UserContext:
    """Per process: the plan (None on a worker until the master sends it), the sink, counters."""

    worker: str
    sink: RowSink
    plan: RunPlan | None = None
    profile: Profile | None = None
    worker_index: int = 0
    late_sends: int = 0
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def set_plan(self, plan: RunPlan) -> None:
        self.profile = Profile.model_validate(plan.profile)
        self.plan = plan

    def next_index(self) -> int:
        # Offset by worker so several workers do not all start on the first stream.
        return next(self._counter) + self.worker_index

    def sample(self, ts: float, kind: str, name: str, latency_ms: float, ok: bool,
               status: int | None = None, error: str | None = None, size: int = 0,
               user: str = "", stream: str | None = None,
               intended_ts: float | None = None) -> None:
        self.sink.add(SampleRow(ts, ts if intended_ts is None else intended_ts, kind, name,
                                latency_ms, ok, status, error, size, self.worker, user, stream))

    def event(self, kind: str, stream: str | None = None, user: str | None = None,
              value: float | None = None, detail: str | None = None,
              ts: float | None = None) -> None:
        self.sink.add(EventRow(time.time() if ts is None else ts, kind, stream, user, value,
                               detail))
