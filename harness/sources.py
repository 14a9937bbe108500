"""Streaming-specific sources polled during a run into `metrics`: nginx-rtmp `/stat` (publishers,
clients, bandwidth per stream), PostgreSQL (`pg_stat_activity` connections against
`max_connections`, lock waits) and Redis (`INFO`: memory, clients, ops/s)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import httpx
import redis

from harness.monitor import PolledSource
from harness.users.context import RowSink
from stack.roles import pg_bindir

PG_QUERY = ("SELECT count(*), current_setting('max_connections')::int, "
            "count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity")
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
    name = "postgres"

    def __init__(self, sink: RowSink, dsn: str, interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.dsn = dsn

    def poll(self) -> list[tuple[str, str, float]]:
        result = subprocess.run([str(pg_bindir() / "psql"), self.dsn, "-tAX", "-F", " ",
                                 "-c", PG_QUERY], capture_output=True, text=True, timeout=10,
                                check=True)
        connections, max_connections, lock_waits = (float(v) for v in result.stdout.split())
        return [("pg_connections", "", connections),
                ("pg_max_connections", "", max_connections),
                ("pg_connections_share", "", connections / max_connections),
                ("pg_lock_waits", "", lock_waits)]


class RedisSource(PolledSource):
    name = "redis"

    def __init__(self, sink: RowSink, url: str, interval_s: float = 5.0) -> None:
        super().__init__(sink, interval_s)
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def poll(self) -> list[tuple[str, str, float]]:
        info = self.client.info()
        return [(series, "", float(info[field])) for field, series in REDIS_FIELDS.items()]
