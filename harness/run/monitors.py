"""The monitors a run starts: the target's processes, its /metrics, PromQL, and the nginx-rtmp,
PostgreSQL and Redis pollers (docs/monitoring.md)."""

from __future__ import annotations

import os
from pathlib import Path

from harness.config.profile import Profile
from harness.config.scenario import Scenario
from harness.monitor.analytics import (
    ClickHouseReader,
    ClickHouseSource,
    KafkaSource,
    analytics_addresses,
)
from harness.monitor.pollers import NginxStatSource, PostgresSource, RedisSource
from harness.monitor.processes import (
    MetricsScraper,
    ProcessSelection,
    ResourceSampler,
    local_stack_roles,
)
from harness.monitor.promql import PrometheusSource
from harness.run.services import Service
from records.schema import RowSink
from stack.state import read_state


def build_monitors(scenario: Scenario, profile: Profile, sink: RowSink,
                   endpoints: dict[str, str], stack_dir: Path,
                   ids_by_key: dict[str, str]) -> list[tuple[str, Service]]:
    """(name, monitor) for each source the target offers. The local stack's processes come
    from its state file, re-read every sample so a restarted instance is followed; its own
    endpoints feed the pollers unless `monitors:` names others. `ids_by_key` fills as streams
    are created (nginx's /stat knows streams by key)."""
    spec = scenario.monitors
    given: dict[str, str | None] = {"nginx_stat_url": spec.nginx_stat_url,
                                    "postgres_dsn": spec.postgres_dsn,
                                    "redis_url": spec.redis_url}
    selected = ProcessSelection(spec.processes)
    monitors: list[tuple[str, Service]] = []
    if scenario.target.stack == "local":
        monitors.append(("processes", ResourceSampler(
            sink, lambda: {**local_stack_roles(read_state(stack_dir).roles), **selected()},
            spec.interval_s)))
        found = {"nginx_stat_url": endpoints.get("stat_url"),
                 "postgres_dsn": endpoints.get("monitor_database_url",
                                               endpoints.get("database_url")),
                 "redis_url": endpoints.get("monitor_redis_url", endpoints.get("redis_url"))}
        given = {name: given.get(name) or found[name] for name in found}
    else:
        monitors.append(("processes", ResourceSampler(sink, selected, spec.interval_s)))
    if spec.prometheus is not None:
        monitors.append(("prometheus", PrometheusSource(sink, spec.prometheus)))
    if endpoints.get("metrics_url"):
        monitors.append(("metrics", MetricsScraper(sink, endpoints["metrics_url"])))
    if given.get("nginx_stat_url"):
        monitors.append(("nginx", NginxStatSource(sink, str(given["nginx_stat_url"]),
                                                   ids_by_key)))
    if given.get("postgres_dsn"):
        monitors.append(("postgres", PostgresSource(sink, str(given["postgres_dsn"]))))
    if given.get("redis_url"):
        monitors.append(("redis", RedisSource(sink, str(given["redis_url"]))))
    return monitors + _analytics_monitors(scenario, profile, sink, endpoints, ids_by_key)


def _analytics_monitors(scenario: Scenario, profile: Profile, sink: RowSink,
                        endpoints: dict[str, str],
                        ids_by_key: dict[str, str]) -> list[tuple[str, Service]]:
    spec = scenario.monitors.analytics
    clickhouse_url, bootstrap = analytics_addresses(spec, endpoints)
    found: list[tuple[str, Service]] = []
    if clickhouse_url:
        found.append(("clickhouse", ClickHouseSource(
            sink, clickhouse_reader(scenario, profile, clickhouse_url),
            lambda: list(ids_by_key.values()), spec.interval_s)))
    if bootstrap:
        found.append(("kafka", KafkaSource(sink, bootstrap, profile.analytics,
                                           spec.interval_s)))
    return found


def clickhouse_reader(scenario: Scenario, profile: Profile, url: str) -> ClickHouseReader:
    spec = scenario.monitors.analytics
    password = os.environ.get(spec.clickhouse_password_env, "") \
        if spec.clickhouse_password_env else None
    return ClickHouseReader(url, profile.analytics, spec.clickhouse_user, password)
