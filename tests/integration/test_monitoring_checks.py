"""The §5/§8 verify lines against a Prometheus that is wrong: a scrape target down and no alert
rules loaded fail their lines with the cause; a Grafana whose panels have no data fails the
dashboard line. (They pass against the shared stack's Prometheus role in test_checks.py, and
the dashboard line against a live soak in test_soak.py.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from harness.suites import monitoring  # noqa: F401  (registers the lines)
from harness.suites.base import REGISTRY, CheckResult, Target, run_check
from stack.roles import free_port
from tests.integration.grafana_standin import TOKEN, grafana_standin
from tests.integration.test_checks import target_of
from tests.support import RunningStack, running_prometheus, wait_for

LINES = ("prometheus-targets", "prometheus-nova-metrics", "alert-rules-loaded",
         "grafana-dashboard")


def verify_lines(target: Target) -> dict[str, CheckResult]:
    return {c.id: run_check(target, c) for c in REGISTRY["verify"] if c.id in LINES}


def test_a_target_down_and_no_rules_fail_with_the_cause(stack: RunningStack,
                                                         tmp_path: Path) -> None:
    apis = [f"127.0.0.1:{r.port}" for r in stack.state.roles.values() if r.kind == "api"]
    gone = f"127.0.0.1:{free_port()}"  # nothing listens there
    with running_prometheus(tmp_path, {"nova": apis, "gone": [gone]}) as prometheus:
        def scraped() -> bool:
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": "up"}).json()
            return len(answer["data"]["result"]) == len(apis) + 1
        assert wait_for(scraped, 20.0, 0.5)
        target = replace(target_of(stack, stack.api), prometheus_url=prometheus)
        with grafana_standin(prometheus) as grafana:
            found = verify_lines(replace(target, grafana_url=grafana, grafana_token=TOKEN))
    assert found["prometheus-targets"].status == "FAIL"
    assert f"gone http://{gone}/metrics: down" in found["prometheus-targets"].reason
    assert found["prometheus-nova-metrics"].status == "PASS"  # the nova job is scraped
    assert found["alert-rules-loaded"].status == "FAIL"
    assert found["alert-rules-loaded"].reason == "Prometheus has no alert rules loaded"
    # No harness run was scraped: the dashboard's panels have nothing to show.
    dashboard_line = found["grafana-dashboard"]
    assert dashboard_line.status == "FAIL" and "panel queries without data" in \
        dashboard_line.reason, dashboard_line.reason
    assert TOKEN not in str([e.request for e in dashboard_line.evidence])
