"""The results format: the one contract between harness/ and analysis/ (docs/results-format.md).
Producers build the typed rows below (their fields are the tables' columns, in order; a test
holds the two equal) and hand them to a RowSink."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import pyarrow as pa

# 2: resources gained pss_bytes; 3: resources gained anon_pss_bytes (analysis still reads
# older folders, their missing columns as nulls; resume refuses them)
RESULTS_SCHEMA_VERSION = 3

TABLES: dict[str, pa.Schema] = {
    "samples": pa.schema([
        ("ts", pa.float64()),            # UTC epoch seconds, operation start
        ("intended_ts", pa.float64()),   # when an open-model operation was due; = ts otherwise
        ("kind", pa.string()),           # http, ws_connect, ws_event, ws_rtt, hls_playlist, …
        ("name", pa.string()),
        ("latency_ms", pa.float64()),
        ("ok", pa.bool_()),
        ("status", pa.int32()),
        ("error", pa.string()),
        ("bytes", pa.int64()),
        ("worker", pa.string()),
        ("user", pa.string()),
        ("stream", pa.string()),
    ]),
    "events": pa.schema([
        ("ts", pa.float64()),
        ("type", pa.string()),
        ("stream", pa.string()),
        ("user", pa.string()),
        ("value", pa.float64()),
        ("detail", pa.string()),
    ]),
    "resources": pa.schema([
        ("ts", pa.float64()),
        ("host", pa.string()),
        ("role", pa.string()),
        ("pid", pa.int64()),
        ("cpu_pct", pa.float64()),
        ("rss_bytes", pa.int64()),
        ("mem_pct", pa.float64()),
        ("read_bytes", pa.int64()),
        ("write_bytes", pa.int64()),
        ("num_fds", pa.int64()),
        ("num_conns", pa.int64()),
        # Proportional set size summed over the tree (each shared page divided among the
        # processes mapping it): summed RSS counts PostgreSQL's shared buffers once per backend.
        ("pss_bytes", pa.int64()),
        # The PSS of anonymous pages only (smaps_rollup `Pss_Anon`), summed: what the processes
        # allocated themselves, each page once. PSS also holds shared memory, which it counts
        # only while some process maps it: PostgreSQL's shared buffers come and go with its
        # backends, by ~17 MB on the reference stack, and read as growth or shrinkage.
        ("anon_pss_bytes", pa.int64()),
    ]),
    "metrics": pa.schema([
        ("ts", pa.float64()),
        ("source", pa.string()),
        ("series", pa.string()),
        ("labels", pa.string()),
        ("value", pa.float64()),
    ]),
}


class SampleRow(NamedTuple):
    """One timed operation or reading (table `samples`)."""

    ts: float
    intended_ts: float
    kind: str
    name: str
    latency_ms: float
    ok: bool
    status: int | None
    error: str | None
    bytes: int
    worker: str
    user: str
    stream: str | None


class EventRow(NamedTuple):
    """Something that happened at `ts` (table `events`)."""

    ts: float
    type: str
    stream: str | None
    user: str | None
    value: float | None
    detail: str | None


class ResourceRow(NamedTuple):
    """One process tree's (or the host's) resource use at `ts` (table `resources`). A row from
    Prometheus has only the fields its queries gave; the others are None."""

    ts: float
    host: str
    role: str
    pid: int | None
    cpu_pct: float | None
    rss_bytes: int | None
    mem_pct: float | None
    read_bytes: int | None
    write_bytes: int | None
    num_fds: int | None
    num_conns: int | None
    pss_bytes: int | None
    anon_pss_bytes: int | None


class MetricRow(NamedTuple):
    """One scraped or computed series value (table `metrics`)."""

    ts: float
    source: str
    series: str
    labels: str
    value: float


Row = SampleRow | EventRow | ResourceRow | MetricRow
ROW_TYPES: dict[str, type[SampleRow] | type[EventRow] | type[ResourceRow] | type[MetricRow]] = {
    "samples": SampleRow, "events": EventRow, "resources": ResourceRow, "metrics": MetricRow}
_TABLE_OF: dict[type, str] = {row_type: table for table, row_type in ROW_TYPES.items()}


def table_of(row: Row) -> str:
    """The table a typed row belongs to."""
    return _TABLE_OF[type(row)]


class RowSink(Protocol):
    """Where producers put rows: the Recorder (through the run's live figures) on the master,
    a shipper on a worker, a list in a test."""

    def add(self, row: Row) -> None: ...


# Sample kinds (the values of `samples.kind`).
HTTP = "http"
WS_CONNECT = "ws_connect"
WS_FIRST_EVENT = "ws_first_event"
WS_EVENT = "ws_event"
WS_RTT = "ws_rtt"
WS_RECONNECT = "ws_reconnect"
RTMP_PUBLISH = "rtmp_publish"
HLS_PLAYLIST = "hls_playlist"
HLS_SEGMENT = "hls_segment"
HLS_STARTUP = "hls_startup"
HLS_STALL = "hls_stall"
HLS_LIVE_LAG = "hls_live_lag"
HLS_INGEST_DELAY = "hls_ingest_delay"

# Values producers write into `samples.kind` and `events.type` (docs/results-format.md); a
# threshold filtering on anything else is an input error, not a silent pass.
SAMPLE_KINDS = frozenset({
    HTTP, WS_CONNECT, WS_FIRST_EVENT, WS_EVENT, WS_RTT, WS_RECONNECT, RTMP_PUBLISH,
    HLS_PLAYLIST, HLS_SEGMENT, HLS_STARTUP, HLS_STALL, HLS_LIVE_LAG, HLS_INGEST_DELAY,
})
# Kinds whose `latency_ms` is a delay read at `ts` (a push latency, a live lag), not the length
# of an operation that began at `ts`; every other kind's operation spans ts .. ts + latency.
READING_KINDS = frozenset({WS_EVENT, HLS_LIVE_LAG, HLS_INGEST_DELAY})
# Latencies that subtract a time the target stamped from the generator's clock: a worker whose
# clock is off reports them off by as much (analysis/distributed.py).
CROSS_CLOCK_KINDS = frozenset({WS_EVENT, HLS_INGEST_DELAY})
# `stream_ended_seen`'s detail when a viewer learned the end from a refused reconnect (the
# status the profile's `errors.stream_gone` names; 410 on the reference, hence the name).
STREAM_GONE_DETAIL = "http_410"
# A soak's extra viewers are users named `cycle<N>-v<i>` (harness/soak/cycles.py); analysis keeps
# them apart from the planned viewers.
CYCLE_USER_PREFIX = "cycle"
EVENT_TYPES = frozenset({
    "stream_created", "publish_started", "stream_active_api", "publish_failed",
    "publish_stopped", "publish_interrupted", "publish_restarted", "viewer_connected",
    "viewer_closed", "viewer_dropped", "viewer_count_observed", "stream_active_seen",
    "stream_ended_seen", "hls_stall_started", "generator_loop_lag_ms",
    "fault_started", "fault_ended", "write_acked", "write_failed", "write_verified",
    "write_lost", "write_changed", "viewer_count_api", "stream_readback",
    "cycle_started", "cycle_connected", "cycle_disconnected", "cycle_idle_end",
    "interim_verdict", "run_resumed",
    "clickhouse_event", "analytics_snapshot", "analytics_snapshot_failed",
    "worker_joined", "worker_clock", "worker_lost",
})
