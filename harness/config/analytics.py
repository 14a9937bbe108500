"""Where a target's analytics events are (the `analytics:` block of a target profile): the
ClickHouse table and the SQL expressions that give each field, the target's names for the
lifecycle event types, and the Kafka topic and loader group. The defaults are the reference
stack's; a real Nova schema maps by changing these, not code (docs/profiles.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from harness.config.base import Strict

# The lifecycle events the harness observes itself, in the harness's words.
OBSERVED_TYPES = ("stream_created", "stream_active", "stream_ended", "viewer_joined",
                  "viewer_left")
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


class EventColumns(Strict):
    """SQL expressions over the table, each giving one field (e.g. a DateTime64 column as
    epoch seconds: `toUnixTimestamp64Milli(created_at) / 1000`)."""

    event_id: str = "event_id"
    event_type: str = "event_type"
    stream: str = "stream_id"
    viewer: str = "viewer_id"
    event_ts: str = "event_ts"          # epoch seconds, when it happened
    ingested_ts: str | None = "loaded_ts"  # epoch seconds, when it was stored (lag); optional


class ClickHouseEvents(Strict):
    table: Annotated[str, Field(pattern=_IDENTIFIER)] = "nova_analytics.stream_events"
    # Read with FINAL (a ReplacingMergeTree keyed by event id drops re-sent copies on read).
    final: bool = True
    columns: EventColumns = Field(default_factory=EventColumns)
    # The target's event_type value for each observed lifecycle event.
    types: dict[str, str] = Field(default_factory=lambda: {
        "stream_created": "stream_created", "stream_active": "stream_started",
        "stream_ended": "stream_ended", "viewer_joined": "viewer_joined",
        "viewer_left": "viewer_left"})

    @field_validator("types")
    @classmethod
    def _known(cls, types: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(types) - set(OBSERVED_TYPES))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not among {', '.join(OBSERVED_TYPES)}")
        return types


class KafkaEvents(Strict):
    topic: str = "nova.stream-events"
    group: str = "nova-events-loader"


class AnalyticsProfile(Strict):
    clickhouse: ClickHouseEvents = Field(default_factory=ClickHouseEvents)
    kafka: KafkaEvents = Field(default_factory=KafkaEvents)
