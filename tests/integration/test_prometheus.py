"""The PromQL source against a real Prometheus (Debian's package) on loopback, scraping the
shared stack's service instances and a node exporter; then a whole run that takes roles from
Prometheus and from process selectors beside the local stack's own sampling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from analysis.load import read_table
from harness.config.monitors import PrometheusSpec, PromQuery
from harness.monitor.promql import PrometheusSource
from records.schema import Row, table_of
from stack.roles import free_port
from tests.support import RunningStack, running_prometheus, wait_for

ROOT = Path(__file__).resolve().parents[2]
NODE_COLLECTORS = ("cpu", "meminfo", "diskstats", "loadavg")


class ListSink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Sequence[Any]]] = []

    def add(self, row: Row) -> None:
        self.rows.append((table_of(row), row))

    def table(self, name: str) -> list[Sequence[Any]]:
        return [row for table, row in self.rows if table == name]


@pytest.fixture(scope="module")
def prometheus(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping every api instance (job nova) and a node exporter (job node) at 1 s;
    yields its URL once both jobs are up and have a few samples."""
    folder = tmp_path_factory.mktemp("prometheus")
    exporter = shutil.which("prometheus-node-exporter")
    assert exporter, "scripts/setup installs prometheus-node-exporter"
    node_port = free_port()
    apis = [f"127.0.0.1:{r.port}" for name, r in stack.state.roles.items() if r.kind == "api"]
    with (folder / "node.log").open("ab") as log:
        node = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{node_port}",
                                 "--collector.disable-defaults",
                                 *(f"--collector.{name}" for name in NODE_COLLECTORS)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        with running_prometheus(folder, {"nova": apis,
                                         "node": [f"127.0.0.1:{node_port}"]}) as url:
            def scraped() -> bool:
                try:
                    result = httpx.get(f"{url}/api/v1/query", params={
                        "query": "count_over_time(up[10s]) >= 4 and up == 1"}).json()
                except (httpx.HTTPError, ValueError):
                    return False
                return len(result.get("data", {}).get("result", [])) == len(apis) + 1
            assert wait_for(scraped, 30.0, 0.5), (folder / "prometheus.log").read_text()[-2000:]
            yield url
    finally:
        node.terminate()  # only what this fixture started, by PID
        node.wait(timeout=10)


def test_promql_rows_match_what_psutil_sees(stack: RunningStack, prometheus: str) -> None:
    spec = PrometheusSpec(url=prometheus, interval_s=1, queries=[
        PromQuery(role="api", field="rss_bytes", query='process_resident_memory_bytes{job="nova"}'),
        PromQuery(role="api", field="cpu_pct",
                  query='rate(process_cpu_seconds_total{job="nova"}[5s]) * 100'),
        PromQuery(role="api", field="num_fds", query='process_open_fds{job="nova"}'),
        PromQuery(role="system", field="rss_bytes",
                  query="node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes"),
        PromQuery(role="system", field="cpu_pct",
                  query='sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5s]))'
                        " * 100")])
    sink = ListSink()
    source = PrometheusSource(sink, spec)
    counts = source.poll_once()
    assert source.failures == 0, sink.rows
    apis = {f"127.0.0.1:{r.port}": r.pid for r in stack.state.roles.values() if r.kind == "api"}
    assert ("prometheus_query_results", "field=rss_bytes,role=api", float(len(apis))) in counts
    rows = {(row[1], row[2]): row for row in sink.table("resources")}
    assert {host for host, role in rows if role == "api"} == set(apis)
    for host, pid in apis.items():
        _, _, _, row_pid, cpu_pct, rss_bytes, mem_pct, _, _, num_fds, _, pss_bytes, \
            anon_pss_bytes = rows[(host, "api")]
        real_rss = psutil.Process(pid).memory_info().rss
        assert abs(rss_bytes - real_rss) < 0.25 * real_rss, (host, rss_bytes, real_rss)
        assert 0 <= cpu_pct < 100 * (psutil.cpu_count() or 1)
        assert num_fds > 5  # not asked for below: pid, memory share, PSS
        assert row_pid is None and mem_pct is None and pss_bytes is anon_pss_bytes is None
    (system,) = [row for (_, role), row in rows.items() if role == "system"]
    used = psutil.virtual_memory().total - psutil.virtual_memory().available
    assert abs(system[5] - used) < 0.2 * used
    source.stop()


def test_promql_errors_are_recorded_not_raised(prometheus: str) -> None:
    sink = ListSink()
    for bad in ("rate(up[", "up[5s]"):  # a parse error; a range vector, not an instant one
        source = PrometheusSource(sink, PrometheusSpec(url=prometheus, queries=[
            PromQuery(role="api", field="cpu_pct", query=bad)]))
        assert source.poll_once() == [] and source.failures == 1
        source.stop()
    failed = sink.table("metrics")
    assert [row[2] for row in failed] == ["prometheus_poll_failed"] * 2
    assert failed[0][3] == "error=SourceError" and sink.table("resources") == []


def test_a_run_takes_roles_from_prometheus_and_selectors(
        stack: RunningStack, prometheus: str, tmp_path: Path) -> None:
    scenario = tmp_path / "monitored.yaml"
    scenario.write_text(json.dumps({
        "name": "monitored", "stack": {"instances": 2},
        "load": {"ramp": "3s", "hold": "10s", "ramp_down": "3s", "warmup": "2s",
                 "cooldown": "2s"},
        "streams": {"count": 1}, "viewers": {"per_stream": 3}, "api_clients": {"rate_per_s": 10},
        "monitors": {
            "interval_s": 0.5,
            "processes": [{"role": "postgres-by-pid-file",
                           "pid_file": str(stack.run_dir / "postgres" / "postmaster.pid")},
                          {"role": "nginx-by-cmdline",
                           "cmdline": f"nginx: master process .*{stack.run_dir}"}],
            "prometheus": {"url": prometheus, "interval_s": 1, "queries": [
                {"role": "api-prometheus", "field": "rss_bytes",
                 "query": 'process_resident_memory_bytes{job="nova"}'}]}},
        "thresholds": str(ROOT / "scenarios/thresholds/smoke.yaml")}))
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(scenario), "--run-dir",
         str(stack.run_dir), "--results", str(tmp_path / "results"), "--quiet"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = next((tmp_path / "results").iterdir())
    resources = read_table(folder, "resources")
    by_role = resources.groupby("role").rss_bytes.min()
    for role in ("postgres-by-pid-file", "nginx-by-cmdline", "api-prometheus", "api",
                 "postgres", "nginx"):
        assert by_role.get(role, 0) > 1_000_000, (role, by_role.to_dict())
    for selected, own in (("postgres-by-pid-file", "postgres"), ("nginx-by-cmdline", "nginx")):
        # The same root process the stack's state file names, children summed the same way.
        assert set(resources[resources.role == selected].pid) == \
            set(resources[resources.role == own].pid)
    assert len(resources[resources.role == "api-prometheus"].host.unique()) == 2
