"""Streaming-specific sources polled during a run into `metrics`: nginx-rtmp `/stat` (publishers,
clients, bandwidth per stream), PostgreSQL (`pg_stat_activity` connections against
`max_connections`, lock waits) and Redis (`INFO`: memory, clients, ops/s)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import httpx
import redis

from harness.monitor.processes import PolledSource
from records.schema import RowSink
from stack.roles import pg_bindir

PG_QUERY = ("SELECT count(*), current_setting('max_connections')::int, "
            "count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity")
PG_CONSISTENCY_QUERY = (
    "SELECT 'active', '-', count(*) FROM streams WHERE status = 'active' "
    "UNION ALL SELECT 'viewers', v.stream_id::text, count(*) FROM viewer_sessions v "
    "JOIN streams s ON s.id = v.stream_id "
    "WHERE s.status = 'active' AND v.left_at IS NULL GROUP BY v.stream_id")
REDIS_FIELDS = {"used_memory": "redis_used_memory_bytes",
                "connected_clients": "redis_connected_clients",
                "instantaneous_ops_per_sec": "redis_ops_per_s"}


class NginxStatSource(PolledSource):
    """Stream keys are secrets: a stream is labelled by its id when the run knows the key,
    otherwise by its position only."""

    name = "nginx"

    def __init__(self, sink: RowSink, url: str, ids_by_key: Mapping[str, str],
                 interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.url, self.ids_by_key = url, ids_by_key
        self.client = httpx.Client(timeout=5.0)

    def poll(self) -> list[tuple[str, str, float]]:
        root = ET.fromstring(self.client.get(self.url).content)
        rows: list[tuple[str, str, float]] = []
        streams = root.findall(".//application/live/stream")
        for index, stream in enumerate(streams):
            key = stream.findtext("name", "")
            label = f"stream={self.ids_by_key.get(key, f'unknown-{index}')}"
            publishing = stream.find("publishing") is not None
            rows += [("nginx_rtmp_stream_clients", label, float(stream.findtext("nclients", "0"))),
                     ("nginx_rtmp_stream_bw_in_bps", label, float(stream.findtext("bw_in", "0"))),
                     ("nginx_rtmp_stream_bw_out_bps", label,
                      float(stream.findtext("bw_out", "0"))),
                     ("nginx_rtmp_stream_publishing", label, 1.0 if publishing else 0.0)]
        rows.append(("nginx_rtmp_streams", "", float(len(streams))))
        rows.append(("nginx_rtmp_bw_in_bps", "", float(root.findtext("bw_in", "0"))))
        rows.append(("nginx_rtmp_bw_out_bps", "", float(root.findtext("bw_out", "0"))))
        return rows


class PostgresSource(PolledSource):
    """Server figures, then the contract's tables (section 6) for the §14 consistency checks:
    active streams and open viewer sessions per active stream. A database without those
    tables still gives the server figures (and a `pg_consistency_query_failed` row)."""

    name = "postgres"

    def __init__(self, sink: RowSink, dsn: str, interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.dsn = dsn

    def _psql(self, query: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(pg_bindir() / "psql"), self.dsn, "-tAX", "-F", " ",
                               "-c", query], capture_output=True, text=True, timeout=10)

    def poll(self) -> list[tuple[str, str, float]]:
        result = self._psql(PG_QUERY)
        result.check_returncode()
        connections, max_connections, lock_waits = (float(v) for v in result.stdout.split())
        rows = [("pg_connections", "", connections),
                ("pg_max_connections", "", max_connections),
                ("pg_connections_share", "", connections / max_connections),
                ("pg_lock_waits", "", lock_waits)]
        consistency = self._psql(PG_CONSISTENCY_QUERY)
        if consistency.returncode != 0:
            return [*rows, ("pg_consistency_query_failed", "", 1.0)]
        for line in consistency.stdout.splitlines():
            what, stream, count = line.split(" ")
            rows.append(("db_active_streams", "", float(count)) if what == "active" else
                        ("db_open_viewer_sessions", f"stream={stream}", float(count)))
        return rows


class RedisSource(PolledSource):
    name = "redis"

    def __init__(self, sink: RowSink, url: str, interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def poll(self) -> list[tuple[str, str, float]]:
        info = self.client.info()
        return [(series, "", float(info[field])) for field, series in REDIS_FIELDS.items()]
