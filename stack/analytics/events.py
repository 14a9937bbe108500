"""One analytics event as the service publishes it and the loader stores it."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

TOPIC = "nova.stream-events"
LOADER_GROUP = "nova-events-loader"
# The loader publishes the ids it stored here; the service keeps each event until it is named.
ACK_TOPIC = "nova.stream-events.stored"
PARTITIONS = 3


@dataclass(frozen=True)
class AnalyticsEvent:
    """`event_ts` is when it happened (epoch seconds), not when it was sent: a re-sent event
    keeps its time and its id, so the store can drop the copy."""

    event_type: str
    stream_id: str
    viewer_id: str = ""
    session_id: str = ""
    instance: str = ""
    event_ts: float = field(default_factory=time.time)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> AnalyticsEvent:
        """Raises ValueError on anything that is not an event of this shape."""
        try:
            values = json.loads(raw)
            return cls(**{k: values[k] for k in ("event_type", "stream_id", "viewer_id",
                                                  "session_id", "instance", "event_ts",
                                                  "event_id")})
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an analytics event: {exc}") from None
