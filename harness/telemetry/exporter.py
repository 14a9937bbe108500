"""The run's live series in the Prometheus exposition format (`nova_harness_*`), built from the
same rows the Recorder gets (one more consumer of the row stream, like the progress display)
and from a few facts of the run read when Prometheus scrapes (stage, time left, broadcasters,
rows written). The series and their meaning: docs/monitoring.md.

A row only updates plain counters here; the exposition is built when Prometheus scrapes. The
client library's labelled metrics cost ~17 µs per row on this path, ten times the Recorder's
own (bench/metrics_cost.py)."""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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
    rows_by_table: dict[str, int] = field(default_factory=dict)
    write_errors: int = 0
    saturated_s: float = 0.0


class Buckets:
    """A histogram's counts: one per bound (value ≤ bound) and one above the last."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's `le` buckets: counts up to and including each bound, then +Inf."""
        running, found = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            found.append((bound, float(running)))
        return found


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"


class HarnessMetrics(Collector):
    """The `nova_harness_*` series of one run (or one worker), in a registry of its own."""

    def __init__(self, run_id: str, scenario: str, results_dir: Path | None = None,
                 facts: Callable[[], RunFacts] | None = None) -> None:
        self.label_values = [run_id, scenario]
        self.results_dir, self.facts = results_dir, facts
        self.connected: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.ws_events = 0
        self.push, self.rtt = Buckets(LATENCY_BUCKETS_S), Buckets(LATENCY_BUCKETS_S)
        self.startup = Buckets(STARTUP_BUCKETS_S)
        self.stalls = 0
        self.connects = {"ok": 0, "failed": 0}
        self.api: dict[tuple[str, ...], int] = {}  # (operation, status class)
        self.api_latency: dict[str, Buckets] = {}
        self.cpu: dict[tuple[str, ...], float] = {}  # (host, pid)
        self.loop_lag: dict[str, float] = {}
        self.target_cpu: dict[str, float] = {}
        self.target_memory: dict[str, float] = {}
        self.interim: dict[str, float] = {}
        self.interim_observed: dict[tuple[str, ...], float] = {}  # (threshold, unit)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    # -- rows ------------------------------------------------------------------------------

    def observe(self, row: Row) -> None:
        """Account for one row (the Recorder has it already). The hot path is a socket
        event's: kept to a few operations."""
        if isinstance(row, SampleRow):
            if row.kind == WS_EVENT:
                self.ws_events += 1
                if row.ok:
                    seconds = row.latency_ms / 1000.0 if row.latency_ms > 0 else 0.0
                    push = self.push
                    push.counts[bisect_left(push.bounds, seconds)] += 1
                    push.total += seconds
            else:
                self._sample(row)
        elif isinstance(row, EventRow):
            self._event(row)
        elif isinstance(row, ResourceRow):
            self._resource(row)

    def _sample(self, row: SampleRow) -> None:
        kind, seconds = row.kind, row.latency_ms / 1000.0
        if kind == HTTP:
            if row.name not in self.api_latency:  # its failures exist at 0 from the start
                self.api_latency[row.name] = Buckets(LATENCY_BUCKETS_S)
                for failed in ("5xx", "error"):
                    self.api[(row.name, failed)] = 0
            key = (row.name, _status_class(row.status))
            self.api[key] = self.api.get(key, 0) + 1
            self.api_latency[row.name].observe(seconds)
        elif kind == WS_CONNECT:
            self.connects["ok" if row.ok else "failed"] += 1
        elif kind == WS_RTT and row.ok:
            self.rtt.observe(seconds)
        elif kind == HLS_STALL:
            self.stalls += 1
        elif kind == HLS_STARTUP and row.ok:
            self.startup.observe(seconds)

    def _event(self, row: EventRow) -> None:
        kind, stream = row.type, row.stream
        if kind == "viewer_connected" and stream:
            self.connected[stream] = self.connected.get(stream, 0) + 1
            self.dropped.setdefault(stream, 0)
        elif kind == "viewer_closed" and stream:
            self.connected[stream] = self.connected.get(stream, 0) - 1
        elif kind == "viewer_dropped" and stream:  # decided after its close
            self.dropped[stream] = self.dropped.get(stream, 0) + 1
        elif kind == "generator_loop_lag_ms" and row.value is not None:
            self.loop_lag[row.detail or "local"] = row.value / 1000
        elif kind == "interim_verdict":
            self._interim()

    def _resource(self, row: ResourceRow) -> None:
        if row.role == GENERATOR_ROLE:
            if row.cpu_pct is not None:
                self.cpu[(row.host, str(row.pid))] = row.cpu_pct
            return
        if row.cpu_pct is not None:
            self.target_cpu[row.role] = row.cpu_pct
        if row.rss_bytes is not None:
            self.target_memory[row.role] = float(row.rss_bytes)

    def _interim(self) -> None:
        """The interim verdict just written: one value per threshold it judged."""
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
            self.interim[threshold] = value
            if isinstance(result.get("observed"), int | float):
                unit = str(result.get("unit") or "")
                self.interim_observed[(threshold, unit)] = float(result["observed"])

    # -- the exposition, built when scraped ------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        yield from self._row_series()
        if self.facts is not None:
            yield from self._fact_series(self.facts())

    def _family(self, kind: type[CounterMetricFamily | GaugeMetricFamily], name: str,
                help_text: str, extra: tuple[str, ...],
                values: dict[tuple[str, ...], float]) -> Metric:
        family = kind(PREFIX + name, help_text, labels=["run_id", "scenario", *extra])
        for key, value in list(values.items()):  # a copy: rows may arrive meanwhile
            family.add_metric([*self.label_values, *key], value)
        return family

    def _histogram(self, name: str, help_text: str, extra: tuple[str, ...],
                   values: dict[tuple[str, ...], Buckets]) -> Metric:
        family = HistogramMetricFamily(PREFIX + name, help_text,
                                       labels=["run_id", "scenario", *extra])
        for key, buckets in list(values.items()):
            family.add_metric([*self.label_values, *key], buckets.cumulative(),
                              sum_value=buckets.total)
        return family

    def _row_series(self) -> Iterator[Metric]:
        counter, gauge, one = CounterMetricFamily, GaugeMetricFamily, ()
        yield self._family(gauge, "viewers_connected", "viewer sockets open now", ("stream",),
                           {(k,): v for k, v in self.connected.items()})
        yield self._family(counter, "viewers_dropped", "viewer sockets the target broke",
                           ("stream",), {(k,): v for k, v in self.dropped.items()})
        yield self._family(counter, "ws_events_received", "viewer-socket events received",
                           one, {one: self.ws_events})
        yield self._histogram("push_latency_seconds", "server timestamp to receipt of a "
                              "socket event", one, {one: self.push})
        yield self._histogram("ws_round_trip_seconds", "get_stream_info round trip", one,
                              {one: self.rtt})
        yield self._family(counter, "ws_connects", "viewer-socket connect attempts by result",
                           ("result",), {(k,): v for k, v in self.connects.items()})
        yield self._family(counter, "api_requests", "API requests by operation and status "
                           "class (2xx … 5xx, error: no answer)", ("operation", "status_class"),
                           dict(self.api))
        yield self._histogram("api_request_duration_seconds", "API request time",
                              ("operation",), {(k,): v for k, v in self.api_latency.items()})
        yield self._family(counter, "hls_stalls", "HLS playback stalls", one, {one: self.stalls})
        yield self._histogram("hls_startup_seconds", "HLS start-up time", one,
                              {one: self.startup})
        yield self._family(gauge, "generator_cpu_percent", "the load generator's CPU (100 = "
                           "one core)", ("host", "pid"), dict(self.cpu))
        yield self._family(gauge, "generator_loop_lag_seconds", "the generator's event-loop "
                           "lag, worst of the last second", ("worker",),
                           {(k,): v for k, v in self.loop_lag.items()})
        yield self._family(gauge, "target_cpu_percent", "CPU of a target role (100 = one "
                           "core)", ("role",), {(k,): v for k, v in self.target_cpu.items()})
        yield self._family(gauge, "target_memory_bytes", "resident memory of a target role",
                           ("role",), {(k,): v for k, v in self.target_memory.items()})
        yield self._family(gauge, "interim_verdict", "a soak's latest interim verdict per "
                           "threshold: 1 pass, 0 fail, -1 inconclusive", ("threshold",),
                           {(k,): v for k, v in self.interim.items()})
        yield self._family(gauge, "interim_observed", "the value the latest interim verdict "
                           "judged, in the threshold's unit", ("threshold", "unit"),
                           dict(self.interim_observed))

    def _fact_series(self, facts: RunFacts) -> Iterator[Metric]:
        gauge, one = GaugeMetricFamily, ()
        yield self._family(gauge, "stage", "1 for the stage the run is in", ("stage",),
                           {(facts.stage,): 1.0})
        yield self._family(gauge, "time_left_seconds", "planned time left in the run", one,
                           {one: facts.time_left_s})
        yield self._family(CounterMetricFamily, "rows_recorded", "rows the Recorder has "
                           "taken, by table", ("table",),
                           {(k,): v for k, v in facts.rows_by_table.items()})
        yield self._family(gauge, "write_errors", "rows the Recorder could not write", one,
                           {one: facts.write_errors})
        yield self._family(gauge, "generator_saturated_seconds", "seconds the generator was "
                           "saturated (CPU or loop lag over its limit)", one,
                           {one: facts.saturated_s})
        yield self._family(gauge, "viewers_planned", "viewers the scenario plans", ("stream",),
                           {(k,): v for k, v in facts.planned_viewers.items()})
        yield self._family(gauge, "broadcasters", "RTMP broadcasters by state", ("state",),
                           {(k,): v for k, v in facts.broadcasters.items()})
