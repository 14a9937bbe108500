"""The run's `nova_harness_*` series from rows and run facts, without a server (one test
serves them on a loopback port and reads them back over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.telemetry.exporter import HarnessMetrics, RunFacts
from harness.telemetry.server import MetricsServer, port_problem
from records.schema import HTTP, WS_CONNECT, WS_EVENT, EventRow, ResourceRow, SampleRow
from stack.roles import free_port

LABELS = {"run_id": "r1", "scenario": "s"}


def sample(kind: str, name: str, latency_ms: float, ok: bool = True,
           status: int | None = 200) -> SampleRow:
    return SampleRow(1.0, 1.0, kind, name, latency_ms, ok, status, None, 0, "local", "u", "st")


def values(metrics: HarnessMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in LABELS))):
            s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_rows_become_series() -> None:
    metrics = HarnessMetrics("r1", "s")
    for row in (sample(WS_EVENT, "viewer_count_changed", 40.0),
                sample(WS_EVENT, "ping", 700.0),
                sample(HTTP, "get", 120.0), sample(HTTP, "get", 5.0, False, 503),
                sample(HTTP, "create", 9.0, False, None),
                sample(WS_CONNECT, "connect", 3.0), sample(WS_CONNECT, "connect", 3.0, False),
                EventRow(1.0, "viewer_connected", "st", "u", 0.0, None),
                EventRow(1.0, "viewer_connected", "st", "v", 0.0, None),
                EventRow(2.0, "viewer_closed", "st", "u", 1006.0, None),
                EventRow(3.0, "viewer_dropped", "st", "u", None, None),  # after its close
                ResourceRow(1.0, "h", "api", 7, 55.0, 1000, None, None, None, None, None,
                            None, None),
                ResourceRow(1.0, "h", "harness", 9, 12.5, 2000, None, None, None, None, None,
                            None, None)):
        metrics.observe(row)
    found = values(metrics)
    assert found[("nova_harness_ws_events_received_total", ())] == 2
    assert found[("nova_harness_push_latency_seconds_bucket", (("le", "0.05"),))] == 1
    assert found[("nova_harness_push_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert found[("nova_harness_push_latency_seconds_bucket", (("le", "0.75"),))] == 2
    assert found[("nova_harness_api_requests_total", (("operation", "get"),
                                                     ("status_class", "2xx")))] == 1
    assert found[("nova_harness_api_requests_total", (("operation", "get"),
                                                     ("status_class", "5xx")))] == 1
    assert found[("nova_harness_api_requests_total", (("operation", "create"),
                                                     ("status_class", "error")))] == 1
    assert found[("nova_harness_ws_connects_total", (("result", "failed"),))] == 1
    assert found[("nova_harness_viewers_connected", (("stream", "st"),))] == 1
    assert found[("nova_harness_viewers_dropped_total", (("stream", "st"),))] == 1
    assert found[("nova_harness_target_cpu_percent", (("role", "api"),))] == 55.0
    assert found[("nova_harness_target_memory_bytes", (("role", "api"),))] == 1000
    assert found[("nova_harness_generator_cpu_percent", (("host", "h"), ("pid", "9")))] == 12.5
    assert not any(name.endswith("_created") for name, _ in found)


def test_run_facts_are_read_when_scraped() -> None:
    facts = [RunFacts(stage="ramp", time_left_s=90.0, planned_viewers={"a": 5, "b": 5},
                      broadcasters={"publishing": 2},
                      rows_by_table={"samples": 7, "events": 2})]
    metrics = HarnessMetrics("r1", "s", facts=lambda: facts[-1])
    first = values(metrics)
    assert first[("nova_harness_stage", (("stage", "ramp"),))] == 1
    assert first[("nova_harness_rows_recorded_total", (("table", "samples"),))] == 7
    facts.append(RunFacts(stage="hold", time_left_s=30.0, broadcasters={"publishing": 1,
                                                                        "interrupted": 1}))
    found = values(metrics)
    assert ("nova_harness_stage", (("stage", "ramp"),)) not in found
    assert found[("nova_harness_stage", (("stage", "hold"),))] == 1
    assert found[("nova_harness_time_left_seconds", ())] == 30.0
    assert found[("nova_harness_broadcasters", (("state", "interrupted"),))] == 1


def test_an_interim_verdict_becomes_one_series_per_threshold(tmp_path: Path) -> None:
    (tmp_path / "interim").mkdir()
    (tmp_path / "interim" / "verdict.json").write_text(json.dumps({"status": "FAIL", "results": [
        {"id": "push-p95", "status": "PASS", "observed": 41.5, "unit": "ms"},
        {"id": "drops", "status": "FAIL", "observed": 3, "unit": ""},
        {"id": "trend", "status": "INCONCLUSIVE", "observed": None},
        {"id": "hls", "status": "NOT_APPLICABLE", "observed": None}]}))
    metrics = HarnessMetrics("r1", "s", results_dir=tmp_path)
    metrics.observe(EventRow(1.0, "interim_verdict", None, None, 2.0, "FAIL"))
    found = values(metrics)
    verdicts = {labels[0][1]: value for (name, labels), value in found.items()
                if name == "nova_harness_interim_verdict"}
    assert verdicts == {"push-p95": 1.0, "drops": 0.0, "trend": -1.0}  # n/a: no series
    assert found[("nova_harness_interim_observed", (("threshold", "push-p95"),
                                                    ("unit", "ms")))] == 41.5


def test_the_endpoint_serves_while_started_and_refuses_a_taken_port() -> None:
    port = free_port()
    metrics = HarnessMetrics("r1", "s")
    metrics.observe(sample(WS_EVENT, "ping", 10.0))
    server = MetricsServer(metrics.registry, "127.0.0.1", port)
    server.start()
    try:
        assert port_problem("127.0.0.1", port) is not None  # taken: by the endpoint
        body = httpx.get(server.url).text
        assert 'nova_harness_ws_events_received_total{run_id="r1",scenario="s"} 1.0' in body
    finally:
        server.stop()
    assert port_problem("127.0.0.1", port) is None
    assert port_problem("127.0.0.1", 0) == "--metrics-port 0: must be 1..65535"
