"""Prometheus as a monitoring source for a deployed target: PromQL instant queries over the
HTTP API on an interval (node_exporter, cAdvisor, kube-state-metrics series of staging pods and
nodes), each result element written into `resources` as one field of a role on a host."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from harness.config.monitors import RESOURCE_FIELDS, PrometheusSpec
from harness.errors import SourceError
from harness.monitor.processes import PolledSource
from records.schema import ResourceRow, RowSink

INTEGER_FIELDS = frozenset({"rss_bytes", "read_bytes", "write_bytes", "num_fds", "num_conns",
                            "pss_bytes", "anon_pss_bytes"})


class PrometheusSource(PolledSource):
    """Every poll runs all queries at one evaluation time and writes one `resources` row per
    (role, host) with the fields the queries gave (others empty). A `prometheus_query_results`
    metrics row per query says how many elements it matched: 0 means a wrong selector."""

    name = "prometheus"

    def __init__(self, sink: RowSink, spec: PrometheusSpec) -> None:
        super().__init__(sink, spec.interval_s)
        self.spec = spec
        self.client = httpx.Client(base_url=spec.url.rstrip("/"), timeout=10.0)

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def poll(self) -> list[tuple[str, str, float]]:
        now = time.time()
        fields: dict[tuple[str, str], dict[str, float]] = {}
        counts: list[tuple[str, str, float]] = []
        for query in self.spec.queries:
            elements = self.query(query.query, now)
            for labels, value in elements:
                host = labels.get(query.host_label, "unknown")
                fields.setdefault((query.role, host), {})[query.field] = value
            counts.append(("prometheus_query_results", f"field={query.field},role={query.role}",
                           float(len(elements))))
        for (role, host), values in sorted(fields.items()):
            self.sink.add(_resource_row(now, host, role, values))
        return counts

    def query(self, promql: str, at_s: float) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every element of an instant query's result."""
        response = self.client.get("/api/v1/query", params={"query": promql, "time": at_s})
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise SourceError(f"Prometheus answered HTTP {response.status_code}, not JSON") \
                from None
        if body.get("status") != "success":
            raise SourceError(f"PromQL {promql!r}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise SourceError(f"PromQL {promql!r} gave a {data['resultType']}, not an instant "
                              "vector (drop the range selector or wrap it in rate())")
        return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]
                if math.isfinite(float(item["value"][1]))]


def _resource_row(now: float, host: str, role: str, values: dict[str, float]) -> ResourceRow:
    cells = [int(values[f]) if f in INTEGER_FIELDS and f in values else values.get(f)
             for f in RESOURCE_FIELDS]
    # Positional from RESOURCE_FIELDS, which is the table's own column list.
    return ResourceRow._make([now, host, role, None, *cells])

