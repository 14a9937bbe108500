"""The `monitors:` block of a scenario: where a deployed target's processes, Prometheus,
nginx-rtmp, PostgreSQL and Redis are (docs/monitoring.md)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from harness.config.base import Strict


class ProcessSelector(Strict):
    """Processes of a role on this host, for a target the harness did not start: exactly one
    of an exact process `name`, a `cmdline` regular expression, or a `pid_file`."""

    role: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str | None = None
    cmdline: str | None = None
    pid_file: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ProcessSelector:
        given = [k for k in ("name", "cmdline", "pid_file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of name, cmdline, pid_file")
        if self.cmdline:
            try:
                re.compile(self.cmdline)
            except re.error as exc:
                raise ValueError(f"cmdline is not a regular expression: {exc}") from None
        return self


RESOURCE_FIELDS = ("cpu_pct", "rss_bytes", "mem_pct", "read_bytes", "write_bytes", "num_fds",
                   "num_conns", "pss_bytes", "anon_pss_bytes")


class PromQuery(Strict):
    """One PromQL instant query; every element of its result vector becomes the `field` of a
    `resources` row for `role`, on the host named by the `host_label` label."""

    role: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    field: Literal[RESOURCE_FIELDS]  # type: ignore[valid-type]
    query: Annotated[str, Field(min_length=1)]
    host_label: str = "instance"


class PrometheusSpec(Strict):
    url: str
    interval_s: Annotated[float, Field(ge=1, le=300)] = 15.0
    queries: Annotated[list[PromQuery], Field(min_length=1)]

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if urlparse(url).scheme not in ("http", "https"):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url


class TargetHostSpec(Strict):
    """The target's machine when it is not this one: resource shares divide by these."""

    cpus: Annotated[int, Field(ge=1)]
    memory_bytes: Annotated[int, Field(ge=1)]


class AnalyticsSources(Strict):
    """The analytics path of a deployed target (the local stack's are found by the run)."""

    clickhouse_url: str | None = None
    clickhouse_user: str = "default"
    # The variable holding the ClickHouse password (never written to results).
    clickhouse_password_env: str | None = None
    kafka_bootstrap: str | None = None
    interval_s: Annotated[float, Field(ge=1, le=300)] = 5.0
    # After the load, how long ClickHouse is given to catch up before the harness reads the
    # run's events for the §14 comparison.
    settle_s: Annotated[float, Field(ge=0, le=600)] = 10.0

    @field_validator("clickhouse_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and urlparse(url).scheme not in ("http", "https"):
            raise ValueError(f"{url!r} is not an http(s) URL (ClickHouse's HTTP interface)")
        return url


class MonitorsSpec(Strict):
    """Sources for a deployed target (the local stack's are found by the run itself)."""

    interval_s: Annotated[float, Field(ge=0.2, le=60)] = 1.0
    nginx_stat_url: str | None = None
    postgres_dsn: str | None = None
    redis_url: str | None = None
    processes: list[ProcessSelector] = Field(default_factory=list)
    prometheus: PrometheusSpec | None = None
    target_host: TargetHostSpec | None = None
    analytics: AnalyticsSources = Field(default_factory=AnalyticsSources)
