"""The analytics path on real parts: the Kafka-protocol broker (Tansu), ClickHouse 18.16 and
the events loader under the stack's supervisor, the reference service publishing to them, and
the harness judging §6 and §14 from what it observed.

- `check --suite verify`: the §6 lines PASS on the analytics stack and FAIL with evidence
  when the broker and ClickHouse are stopped;
- a loader that drops every tenth event (a test-only setting) makes clickhouse-events-match
  FAIL with the missing events named;
- the three analytics faults (broker, loader, ClickHouse killed) during load, shortened: each
  gets its fault line, nothing observed is missing and nothing is stored twice.

The shipped scenarios themselves run in the slow tier (test_shipped_scenarios.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.load import read_table
from harness.config.profile import load_profile
from harness.suites.base import REGISTRY, CheckResult, Target, run_check
from harness.suites.runner import BUILT_SUITES  # noqa: F401  (registers every check)
from stack import local
from tests.integration.test_run import CLI, ROOT
from tests.support import RunningStack, running_stack

pytestmark = pytest.mark.integration

FAULTS = """name: analytics-faults-short
target: {{stack: local}}
stack: {{analytics: true}}
load: {{ramp: 3s, hold: 37s, ramp_down: 2s, warmup: 2s, cooldown: 2s}}
streams: {{count: 2}}
viewers: {{per_stream: 8, info_interval_s: 2}}
api_clients: {{rate_per_s: 5, mix: {{list_active: 5, get: 3, health: 1}}}}
monitors: {{analytics: {{settle_s: 5, interval_s: 2}}}}
soak: {{cycle_viewers: 6, cycle_start: 3s, cycle_connect: 1s, cycle_hold: 3s, cycle_idle: 2s,
       report_every: 600s}}
chaos:
  - {{experiment: {chaos}/kill-kafka.json, at: 5s, vars: {{outage_s: 3}}}}
  - {{experiment: {chaos}/kill-events-loader.json, at: 17s, vars: {{outage_s: 3}}}}
  - {{experiment: {chaos}/kill-clickhouse.json, at: 29s, vars: {{outage_s: 3}}}}
thresholds: {thresholds}
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack("analytics", analytics=True) as running:
        yield running


def run(stack_dir: Path, scenario: Path, results: Path, *extra: str) -> tuple[int, str, Path]:
    result = subprocess.run([*CLI, "run", str(scenario), "--run-dir", str(stack_dir),
                             "--results", str(results), "--quiet", *extra],
                            capture_output=True, text=True, timeout=400)
    (folder,) = results.iterdir()
    return result.returncode, result.stdout + result.stderr, folder


def results_by_id(folder: Path) -> dict[str, dict[str, Any]]:
    verdict = json.loads((folder / "verdict.json").read_text())
    return {r["id"]: r for r in verdict["results"]}


def test_the_stack_runs_the_analytics_roles(stack: RunningStack) -> None:
    status = local.status(stack.run_dir)
    for role in ("kafka", "clickhouse", "events-loader"):
        assert status["roles"][role]["healthy"], status["roles"][role]
    assert {"kafka_bootstrap", "clickhouse_url", "loader_metrics_url"} <= set(
        status["endpoints"])


def test_verify_passes_then_fails_with_evidence_when_stopped(stack: RunningStack) -> None:
    endpoints = stack.state.endpoints
    target = Target(endpoints["api_base"], endpoints["ws_base"], endpoints["rtmp_url"],
                    endpoints["hls_base"], endpoints["metrics_url"], load_profile("nova-doc"),
                    stack.minter, kafka_bootstrap=endpoints["kafka_bootstrap"],
                    clickhouse_url=endpoints["clickhouse_url"])

    def verify() -> dict[str, CheckResult]:
        return {c.id: run_check(target, c) for c in REGISTRY["verify"]
                if c.id in ("kafka-broker", "clickhouse-select")}

    healthy = verify()
    assert healthy["kafka-broker"].status == "PASS", healthy["kafka-broker"]
    assert "nova.stream-events" in healthy["kafka-broker"].reason
    assert healthy["clickhouse-select"].status == "PASS", healthy["clickhouse-select"]
    for role in ("kafka", "clickhouse"):
        local.control(stack.run_dir, "stop", role)
    try:
        down = verify()
    finally:
        for role in ("kafka", "clickhouse"):
            local.control(stack.run_dir, "start", role)
    for line in ("kafka-broker", "clickhouse-select"):
        assert down[line].status == "FAIL", down[line]
        assert "refused" in down[line].reason, down[line]
        assert down[line].evidence, "the failed exchange is kept as evidence"


def test_a_loader_losing_events_fails_the_match_naming_them(tmp_path: Path) -> None:
    with running_stack("analytics-drop", analytics=True,
                       service_env={"NOVA_LOADER_DROP_EVERY": "10"}) as dropping:
        scenario = tmp_path / "dropping.yaml"
        scenario.write_text((ROOT / "scenarios/analytics-consistency.yaml").read_text()
                            .replace("thresholds/", f"{ROOT}/scenarios/thresholds/")
                            + "monitors: {analytics: {settle_s: 5}}\n")
        code, output, folder = run(dropping.run_dir, scenario, tmp_path / "results",
                                   "--duration", "16s")
    match = results_by_id(folder)["clickhouse-events-match"]
    assert match["status"] == "FAIL", (match, output[-2000:])
    assert code == 1, output[-2000:]
    assert "missing" in match["reason"] and "observed, not stored" in match["reason"], match
    observed = int(match["reason"].split("compared ")[1].split(" observed")[0])
    missing = int(match["reason"].split(" missing")[0].rsplit(" ", 1)[1])
    # Every tenth event of the stream events and joins/leaves the harness observed (the API
    # mix's own streams are dropped too, but are not compared).
    assert observed > 40 and 1 <= missing <= observed // 5, match["reason"]


def test_the_analytics_faults_lose_nothing(stack: RunningStack, tmp_path: Path) -> None:
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(FAULTS.format(
        chaos=ROOT / "chaos/local",
        thresholds=ROOT / "scenarios/thresholds/analytics-faults.yaml"))
    _code, output, folder = run(stack.run_dir, scenario, tmp_path / "results")
    results = results_by_id(folder)
    assert results["faults-completed"]["observed"] == 3, output[-2000:]
    for line in ("analytics-no-event-lost", "clickhouse-events-match"):
        assert results[line]["status"] == "PASS", (results[line], output[-2000:])
    assert results["analytics-lag-recovery"]["observed"] is not None
    notes = json.loads((folder / "verdict.json").read_text())["notes"]
    for fault in ("kill-kafka", "kill-events-loader", "kill-clickhouse"):
        assert any(fault in note and "events of its window" in note for note in notes), notes
    metrics = read_table(folder, "metrics")
    assert (metrics.series == "kafka_consumer_lag_total").any()
    assert (metrics.series == "clickhouse_events").any()
    resent = metrics[metrics.series == "nova_analytics_events_total"]
    assert resent.labels.str.contains("outcome=resent").any(), \
        "the broker's restart made the service send held events again"
