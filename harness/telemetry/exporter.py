"""The run's live series in the Prometheus exposition format (`nova_harness_*`), built from the
same rows the Recorder gets (one more consumer of the row stream, like the progress display)
and from a few facts of the run read when Prometheus scrapes (stage, time left, broadcasters,
rows written). The series and their meaning: docs/monitoring.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from records.schema import (
    HLS_STALL,
    HLS_STARTUP,
    HTTP,
    WS_CONNECT,
    WS_EVENT,
    WS_RTT,
    EventRow,
    ResourceRow,
    Row,
    SampleRow,
    table_of,
)

PREFIX = "nova_harness_"
# Around the checklist's limits: push latency < 100 ms (p95), API p95 < 500 ms.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
STARTUP_BUCKETS_S = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
VERDICT_VALUES = {"PASS": 1.0, "FAIL": 0.0, "INCONCLUSIVE": -1.0}
GENERATOR_ROLE = "harness"  # the role the self-watch gives the load generator's own rows


@dataclass(frozen=True)
class RunFacts:
    """What the run knows that no row carries, read at scrape time."""

    stage: str = "starting"
    time_left_s: float = 0.0
    planned_viewers: dict[str, int] = field(default_factory=dict)  # stream id → viewers
    broadcasters: dict[str, int] = field(default_factory=dict)  # state → count
    rows_written: int = 0
    write_errors: int = 0
    saturated_s: float = 0.0


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"


class HarnessMetrics:
    """The `nova_harness_*` series of one run (or one worker), in a registry of its own."""

    def __init__(self, run_id: str, scenario: str, results_dir: Path | None = None,
                 facts: Callable[[], RunFacts] | None = None) -> None:
        # `_created` series: noise to every dashboard and rule.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.labels = {"run_id": run_id, "scenario": scenario}
        self.results_dir = results_dir
        names = list(self.labels)
        r = self.registry
        self.connected = Gauge(PREFIX + "viewers_connected", "viewer sockets open now",
                               [*names, "stream"], registry=r)
        self.dropped = Counter(PREFIX + "viewers_dropped", "viewer sockets the target broke",
                               [*names, "stream"], registry=r)
        self.ws_events = Counter(PREFIX + "ws_events_received", "viewer-socket events received",
                                 names, registry=r)
        self.push = Histogram(PREFIX + "push_latency_seconds", "server timestamp to receipt "
                              "of a socket event", names, buckets=LATENCY_BUCKETS_S, registry=r)
        self.rtt = Histogram(PREFIX + "ws_round_trip_seconds", "get_stream_info round trip",
                             names, buckets=LATENCY_BUCKETS_S, registry=r)
        self.connects = Counter(PREFIX + "ws_connects", "viewer-socket connect attempts by "
                                "result (ok, failed)", [*names, "result"], registry=r)
        self.api = Counter(PREFIX + "api_requests", "API requests by operation and status "
                           "class (2xx … 5xx, error: no answer)",
                           [*names, "operation", "status_class"], registry=r)
        self.api_latency = Histogram(PREFIX + "api_request_duration_seconds", "API request "
                                     "time", [*names, "operation"], buckets=LATENCY_BUCKETS_S,
                                     registry=r)
        self.stalls = Counter(PREFIX + "hls_stalls", "HLS playback stalls", names, registry=r)
        self.startup = Histogram(PREFIX + "hls_startup_seconds", "HLS start-up time", names,
                                 buckets=STARTUP_BUCKETS_S, registry=r)
        self.cpu = Gauge(PREFIX + "generator_cpu_percent", "the load generator's CPU (100 = "
                         "one core)", [*names, "host", "pid"], registry=r)
        self.loop_lag = Gauge(PREFIX + "generator_loop_lag_seconds", "the generator's event-loop "
                              "lag, worst of the last second", [*names, "worker"], registry=r)
        self.target_cpu = Gauge(PREFIX + "target_cpu_percent", "CPU of a target role",
                                [*names, "role"], registry=r)
        self.target_memory = Gauge(PREFIX + "target_memory_bytes", "resident memory of a "
                                   "target role", [*names, "role"], registry=r)
        self.rows = Counter(PREFIX + "rows_recorded", "result rows by table", [*names, "table"],
                            registry=r)
        self.interim = Gauge(PREFIX + "interim_verdict", "a soak's latest interim verdict per "
                             "threshold: 1 pass, 0 fail, -1 inconclusive",
                             [*names, "threshold"], registry=r)
        self.interim_observed = Gauge(PREFIX + "interim_observed", "the value the latest "
                                      "interim verdict judged, in the threshold's unit",
                                      [*names, "threshold", "unit"], registry=r)
        if facts is not None:
            r.register(_FactsCollector(self.labels, facts))
        # Counts of bad things exist at 0 from the start: "none" is data, not a gap.
        self.stalls.labels(**self.labels)
        self._seen_operations: set[str] = set()

    def observe(self, row: Row) -> None:
        """Account for one row (the Recorder has it already)."""
        self.rows.labels(**self.labels, table=table_of(row)).inc()
        if isinstance(row, SampleRow):
            self._sample(row)
        elif isinstance(row, EventRow):
            self._event(row)
        elif isinstance(row, ResourceRow):
            self._resource(row)

    def _sample(self, row: SampleRow) -> None:
        labels, seconds = self.labels, row.latency_ms / 1000.0
        if row.kind == WS_EVENT:
            self.ws_events.labels(**labels).inc()
            if row.ok:
                self.push.labels(**labels).observe(max(0.0, seconds))
        elif row.kind == HTTP:
            if row.name not in self._seen_operations:
                self._seen_operations.add(row.name)
                for failed in ("5xx", "error"):
                    self.api.labels(**labels, operation=row.name, status_class=failed)
            self.api.labels(**labels, operation=row.name,
                            status_class=_status_class(row.status)).inc()
            self.api_latency.labels(**labels, operation=row.name).observe(seconds)
        elif row.kind == WS_CONNECT:
            self.connects.labels(**labels, result="failed")
            self.connects.labels(**labels, result="ok" if row.ok else "failed").inc()
        elif row.kind == WS_RTT and row.ok:
            self.rtt.labels(**labels).observe(seconds)
        elif row.kind == HLS_STALL:
            self.stalls.labels(**labels).inc()
        elif row.kind == HLS_STARTUP and row.ok:
            self.startup.labels(**labels).observe(seconds)

    def _event(self, row: EventRow) -> None:
        labels = self.labels
        if row.type == "viewer_connected" and row.stream:
            self.connected.labels(**labels, stream=row.stream).inc()
            self.dropped.labels(**labels, stream=row.stream)
        elif row.type == "viewer_closed" and row.stream:
            self.connected.labels(**labels, stream=row.stream).dec()
        elif row.type == "viewer_dropped" and row.stream:  # decided after its close
            self.dropped.labels(**labels, stream=row.stream).inc()
        elif row.type == "generator_loop_lag_ms" and row.value is not None:
            self.loop_lag.labels(**labels, worker=row.detail or "local").set(row.value / 1000)
        elif row.type == "interim_verdict":
            self._interim()

    def _resource(self, row: ResourceRow) -> None:
        labels = self.labels
        if row.role == GENERATOR_ROLE:
            if row.cpu_pct is not None:
                self.cpu.labels(**labels, host=row.host, pid=str(row.pid)).set(row.cpu_pct)
            return
        if row.cpu_pct is not None:
            self.target_cpu.labels(**labels, role=row.role).set(row.cpu_pct)
        if row.rss_bytes is not None:
            self.target_memory.labels(**labels, role=row.role).set(row.rss_bytes)

    def _interim(self) -> None:
        """The interim verdict just written: one gauge per threshold it judged."""
        if self.results_dir is None:
            return
        try:
            verdict = json.loads((self.results_dir / "interim" / "verdict.json").read_text())
        except (OSError, ValueError):
            return  # the reporter records the failure itself (status ERROR)
        for result in verdict.get("results", []):
            value = VERDICT_VALUES.get(str(result.get("status")))
            if value is None:
                continue  # not applicable: nothing to show
            threshold = str(result.get("id"))
            self.interim.labels(**self.labels, threshold=threshold).set(value)
            if isinstance(result.get("observed"), int | float):
                self.interim_observed.labels(**self.labels, threshold=threshold,
                                             unit=str(result.get("unit") or "")).set(
                    float(result["observed"]))


class _FactsCollector(Collector):
    """Series read from the run at scrape time."""

    def __init__(self, labels: dict[str, str], facts: Callable[[], RunFacts]) -> None:
        self.labels, self.facts = labels, facts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        facts, names, values = self.facts(), list(self.labels), list(self.labels.values())

        def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(PREFIX + name, help_text, labels=names)
            family.add_metric(values, value)
            return family

        stage = GaugeMetricFamily(PREFIX + "stage", "1 for the stage the run is in",
                                  labels=[*names, "stage"])
        stage.add_metric([*values, facts.stage], 1.0)
        yield stage
        yield gauge("time_left_seconds", "planned time left in the run", facts.time_left_s)
        yield gauge("rows_written", "rows the Recorder has taken", facts.rows_written)
        yield gauge("write_errors", "rows the Recorder could not write", facts.write_errors)
        yield gauge("generator_saturated_seconds", "seconds the generator was saturated "
                    "(CPU or loop lag over its limit)", facts.saturated_s)
        planned = GaugeMetricFamily(PREFIX + "viewers_planned", "viewers the scenario plans",
                                    labels=[*names, "stream"])
        for stream, count in facts.planned_viewers.items():
            planned.add_metric([*values, stream], count)
        yield planned
        broadcasters = GaugeMetricFamily(PREFIX + "broadcasters", "RTMP broadcasters by state",
                                         labels=[*names, "state"])
        for state, count in facts.broadcasters.items():
            broadcasters.add_metric([*values, state], count)
        yield broadcasters
