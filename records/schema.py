"""The results format: the one contract between harness/ and analysis/ (docs/results-format.md).
Column order here is the order of the tuples producers hand to the Recorder."""

from __future__ import annotations

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

SampleRow = tuple[float, float, str, str, float, bool, int | None, str | None, int, str, str,
                  str | None]
EventRow = tuple[float, str, str | None, str | None, float | None, str | None]
ResourceRow = tuple[float, str, str, int | None, float, int, float, int, int, int, int, int | None]
MetricRow = tuple[float, str, str, str, float]

# Values producers write into `samples.kind` and `events.type` (docs/results-format.md); a
# threshold filtering on anything else is an input error, not a silent pass.
SAMPLE_KINDS = frozenset({
    "http", "ws_connect", "ws_first_event", "ws_event", "ws_rtt", "ws_reconnect",
    "rtmp_publish", "hls_playlist", "hls_segment", "hls_startup", "hls_stall", "hls_live_lag",
    "hls_ingest_delay",
})
# Kinds whose `latency_ms` is a delay read at `ts` (a push latency, a live lag), not the length
# of an operation that began at `ts`; every other kind's operation spans ts .. ts + latency.
READING_KINDS = frozenset({"ws_event", "hls_live_lag", "hls_ingest_delay"})
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
})
