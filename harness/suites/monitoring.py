"""Checklist §5 ("Prometheus scrape targets configured, Grafana dashboards imported, alert rules
deployed") and §8 ("Prometheus metrics available, dashboard showing real metrics, all panels
have data, alerting rules loaded"), in the verify suite: asked of the target's Prometheus
(`--prometheus-url`, or the local stack's Prometheus role) and, when given, its Grafana."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from harness.errors import CheckSkipped
from harness.suites.base import Session, check, expect
from stack.roles import ALERT_RULES

# Series a healthy, idle Nova service exports from its start (the contract's section 5; a
# histogram by its _count). Labelled counters and per-stream gauges appear with their first
# event, so their absence is reported, not failed.
STARTUP_SERIES = ("nova_streaming_active_streams", "nova_streaming_websocket_connections",
                  "nova_streaming_peak_viewers", "nova_streaming_viewers_total_count",
                  "nova_streaming_stream_duration_seconds_count",
                  "nova_streaming_rtmp_ingestion_latency_seconds_count",
                  "nova_streaming_http_requests_total",
                  "nova_streaming_http_request_duration_seconds_count",
                  "process_resident_memory_bytes")
FIRST_EVENT_SERIES = ("nova_streaming_broadcast_errors_total",
                      "nova_streaming_quality_bitrate_kbps", "nova_streaming_stream_viewers",
                      "nova_streaming_viewer_issues_total",
                      "nova_streaming_websocket_messages_sent_total")
METRICS_LIMIT_MS, METRICS_TRIES = 100.0, 20
FIRST_SCRAPE_WITHIN_S = 15.0  # a Prometheus just started: no targets, then "unknown" ones
DASHBOARD_UID = "nova-harness"
RUN_SELECTOR = re.compile(r'run_id="\$run_id"')


def _prometheus(s: Session) -> str:
    url = s.target.prometheus_url
    if not url:
        raise CheckSkipped("no Prometheus given (--prometheus-url, or `stack up --prometheus` "
                           "for the local stack)")
    return url.rstrip("/")


def _api(s: Session, url: str, params: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> Any:
    """The `data` of a Prometheus API answer (a Grafana one whole); FAIL on anything else.
    Headers (a Grafana token) are sent, never recorded."""
    response = s.request("GET", url, params=params, headers=headers)
    expect(response.status_code == 200, f"GET {url}: HTTP {response.status_code}")
    body = response.json()
    return body.get("data") if isinstance(body, dict) and "status" in body else body


@check("verify", "prometheus-targets", "§5/§8 Prometheus scrape targets configured and up")
def prometheus_targets(s: Session) -> str:
    prometheus = _prometheus(s)
    deadline = time.monotonic() + FIRST_SCRAPE_WITHIN_S
    while True:
        active = _api(s, f"{prometheus}/api/v1/targets", {"state": "active"})["activeTargets"]
        # A Prometheus just started lists no targets until it has read its configuration.
        pending = not active or any(t["health"] == "unknown" for t in active)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    expect(bool(active), "Prometheus has no scrape target configured")
    down = [f"{t['labels'].get('job')} {t['scrapeUrl']}: {t['health']}"
            + (f" ({t['lastError']})" if t.get("lastError") else "") for t in active
            if t["health"] != "up"]
    expect(not down, f"{len(down)} of {len(active)} targets not up: " + "; ".join(down))
    jobs = sorted({str(t["labels"].get("job")) for t in active})
    return f"{len(active)} targets up (jobs: {', '.join(jobs)})"


@check("verify", "prometheus-nova-metrics", "§8 Prometheus metrics available: the Nova "
                                            "streaming series are scraped")
def prometheus_nova_metrics(s: Session) -> str:
    deadline = time.monotonic() + FIRST_SCRAPE_WITHIN_S
    while True:  # series appear with a target's first scrape
        names = set(_api(s, f"{_prometheus(s)}/api/v1/label/__name__/values"))
        missing = [name for name in STARTUP_SERIES if name not in names]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    expect(not missing, f"not in Prometheus: {', '.join(missing)}")
    unseen = [name for name in FIRST_EVENT_SERIES if name not in names]
    later = f"; not seen yet (they appear with their first event): {', '.join(unseen)}" \
        if unseen else ""
    return f"all {len(STARTUP_SERIES)} series a running service exports{later}"


def expected_rule_groups(path: Path = ALERT_RULES) -> set[str]:
    """The group names of the checklist's alert rules (deploy/prometheus)."""
    if not path.exists():
        return set()
    document = yaml.safe_load(path.read_text())
    return {str(group["name"]) for group in document.get("groups", [])}


@check("verify", "alert-rules-loaded", "§5/§8 alert rules deployed and loaded, none in error")
def alert_rules_loaded(s: Session) -> str:
    groups = _api(s, f"{_prometheus(s)}/api/v1/rules")["groups"]
    loaded = {group["name"] for group in groups}
    expected = expected_rule_groups()
    missing = sorted(expected - loaded)
    broken = [f"{rule['name']}: {rule.get('lastError') or rule['health']}" for group in groups
              for rule in group["rules"] if rule.get("health") not in ("ok", "unknown")]
    problems = ([f"rule groups not loaded: {', '.join(missing)}"] if missing else []) + \
        ([f"rules in error: {'; '.join(broken)}"] if broken else [])
    expect(bool(groups), "Prometheus has no alert rules loaded")
    expect(not problems, "; ".join(problems))
    rules = sum(len(group["rules"]) for group in groups)
    return f"{len(groups)} groups, {rules} rules loaded, none in error"


@check("verify", "metrics-fast", "§8 the metrics endpoint answers in < 100 ms (p95)")
def metrics_fast(s: Session) -> str:
    took_ms = []
    for _ in range(METRICS_TRIES):
        started = time.perf_counter()
        response = s.client.get(s.target.metrics_url)  # one evidence line for the lot
        took_ms.append((time.perf_counter() - started) * 1000)
        expect(response.status_code == 200, f"/metrics: HTTP {response.status_code}")
    took_ms.sort()
    p95 = took_ms[int(0.95 * (len(took_ms) - 1))]
    s.note(f"GET {s.target.metrics_url}, {METRICS_TRIES} times", 200,
           f"p95 {p95:.1f} ms, max {took_ms[-1]:.1f} ms", time.perf_counter())
    expect(p95 < METRICS_LIMIT_MS, f"p95 {p95:.1f} ms ≥ {METRICS_LIMIT_MS:.0f} ms")
    return f"p95 {p95:.1f} ms over {METRICS_TRIES} requests (limit {METRICS_LIMIT_MS:.0f} ms)"


@check("verify", "grafana-dashboard", "§5/§8 Grafana: the harness dashboard imported, every "
                                      "panel has data")
def grafana_dashboard(s: Session) -> str:
    grafana, token = s.target.grafana_url, s.target.grafana_token
    if not grafana or not token:
        raise CheckSkipped("no Grafana given (--grafana-url and --grafana-token-env)")
    base, headers = grafana.rstrip("/"), {"Authorization": f"Bearer {token}"}
    board = _api(s, f"{base}/api/dashboards/uid/{DASHBOARD_UID}", headers=headers)["dashboard"]
    sources = _api(s, f"{base}/api/datasources", headers=headers)
    prometheus = [d for d in sources if d.get("type") == "prometheus"]
    expect(bool(prometheus), "Grafana has no Prometheus datasource")
    source = next((d for d in prometheus if d.get("isDefault")), prometheus[0])
    empty, asked = [], 0
    for title, expr in _panel_queries(board):
        asked += 1
        query = RUN_SELECTOR.sub('run_id=~".+"', expr).replace("$__rate_interval", "1m")
        found = _api(s, f"{base}/api/datasources/proxy/uid/{source['uid']}/api/v1/query",
                     {"query": query}, headers)
        if not found.get("result"):
            empty.append(title)
    expect(not empty, f"{len(empty)} of {asked} panel queries without data: "
                      + "; ".join(empty))
    return f"dashboard {DASHBOARD_UID} found; all {asked} panel queries have data"


def _panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    panels = [p for top in board.get("panels", []) for p in [top, *top.get("panels", [])]]
    return [(str(p.get("title")), str(t["expr"])) for p in panels if p.get("type") != "row"
            for t in p.get("targets", []) if t.get("expr")]
