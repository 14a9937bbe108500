"""Prometheus series of the reference service (contract section 5), on a private registry."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)


class ServiceMetrics:
    """Every series the service exports; gauges of fleet state are refreshed at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.active_streams = Gauge(
            "nova_streaming_active_streams", "Streams in status active", ["region"], registry=r)
        self.websocket_connections = Gauge(
            "nova_streaming_websocket_connections",
            "Open viewer sockets held by this instance", registry=r)
        self.stream_viewers = Gauge(
            "nova_streaming_stream_viewers",
            "Open viewer sockets of an active stream across all instances", ["stream_id"],
            registry=r)
        self.peak_viewers = Gauge(
            "nova_streaming_peak_viewers", "Highest peak viewer count among active streams",
            registry=r)
        self.viewers_total = Histogram(
            "nova_streaming_viewers_total", "Final viewer count of ended streams",
            buckets=(0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000), registry=r)
        self.stream_duration = Histogram(
            "nova_streaming_stream_duration_seconds", "Duration of ended streams",
            buckets=(10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600), registry=r)
        self.quality_bitrate = Gauge(
            "nova_streaming_quality_bitrate_kbps",
            "Bitrate of an active stream's current quality, kbps", ["stream_id"], registry=r)
        self.rtmp_ingestion_latency = Histogram(
            "nova_streaming_rtmp_ingestion_latency_seconds",
            "From nginx-rtmp's on_publish call to the stream being active and announced",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r)
        self.broadcast_errors = Counter(
            "nova_streaming_broadcast_errors_total", "Rejected or failed RTMP publishes",
            ["error_type"], registry=r)
        self.http_requests = Counter(
            "nova_streaming_http_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=r)
        self.http_latency = Histogram(
            "nova_streaming_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)
        self.viewer_issues = Counter(
            "nova_streaming_viewer_issues_total", "Playback issues viewers reported "
            "(report_issue)", ["issue_type"], registry=r)
        self.ws_messages_sent = Counter(
            "nova_streaming_websocket_messages_sent_total", "Viewer socket frames sent",
            ["event"], registry=r)

        self.analytics_events = Counter(
            "nova_analytics_events_total", "Analytics events by outcome: emitted, "
            "acknowledged (by the broker), stored (named by the loader), resent (not stored "
            "in time), send_failed, dropped (over the held bound)", ["outcome"], registry=r)
        self.analytics_held = Gauge(
            "nova_analytics_events_held", "Events emitted and not yet named stored by the loader",
            registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
