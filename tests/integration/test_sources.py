"""nginx-rtmp /stat, PostgreSQL and Redis sources against the real shared stack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.load.publisher import Publisher, ensure_clip
from harness.monitor.pollers import NginxStatSource, PostgresSource, RedisSource
from records.schema import Row, table_of
from tests.support import RunningStack, wait_for


class ListSink:
    def __init__(self) -> None:
        self.rows: list[Sequence[Any]] = []

    def add(self, row: Row) -> None:
        assert table_of(row) == "metrics"
        self.rows.append(row)


def test_nginx_stat_sees_the_publisher_without_leaking_its_key(
        stack: RunningStack, new_stream: dict[str, Any], tmp_path: Path) -> None:
    sink = ListSink()
    key, stream_id = str(new_stream["rtmp_key"]), str(new_stream["id"])
    source = NginxStatSource(sink, stack.state.endpoints["stat_url"], {key: stream_id})
    publisher = Publisher(stack.state.endpoints["rtmp_url"], key, ensure_clip(),
                          tmp_path / "ffmpeg.log")
    publisher.start()
    try:
        def publishing() -> bool:
            rows = source.poll_once()
            return ("nginx_rtmp_stream_publishing", f"stream={stream_id}", 1.0) in rows
        assert wait_for(publishing, 10.0, 0.3), sink.rows[-6:]
        assert wait_for(lambda: any(r[0] == "nginx_rtmp_stream_bw_in_bps" and r[2] > 0
                                    for r in source.poll_once()), 15.0, 1.0)
    finally:
        publisher.stop()
    assert all(key not in str(row) for row in sink.rows)


def test_postgres_source_reads_connections_against_the_limit(stack: RunningStack) -> None:
    sink = ListSink()
    rows = dict(((s, v) for s, _, v in
                 PostgresSource(sink, stack.state.endpoints["database_url"]).poll_once()))
    assert rows["pg_max_connections"] == 200
    assert 1 <= rows["pg_connections"] < 200
    assert rows["pg_connections_share"] == rows["pg_connections"] / 200
    assert rows["pg_lock_waits"] >= 0


def test_redis_source_and_a_failing_poll(stack: RunningStack) -> None:
    sink = ListSink()
    rows = {s: v for s, _, v in RedisSource(sink, stack.state.endpoints["redis_url"]).poll_once()}
    assert rows["redis_connected_clients"] >= 2  # the service instances
    assert rows["redis_used_memory_bytes"] > 100_000
    dead = RedisSource(sink, "redis://127.0.0.1:1/0")
    assert dead.poll_once() == [] and dead.failures == 1
    assert sink.rows[-1][2] == "redis_poll_failed"
