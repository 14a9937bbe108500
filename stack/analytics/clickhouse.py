"""The ClickHouse server of the local stack (Debian's 18.16 runs here) and the few statements
the loader sends it, over the HTTP interface every ClickHouse version serves."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DATABASE = "nova_analytics"
TABLE = f"{DATABASE}.stream_events"
# ReplacingMergeTree keeps one row per sorting key after merges, and FINAL applies that at
# read time: a re-sent or re-loaded event is stored twice and read once.
SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} (event_id String, event_type String, "
    "stream_id String, viewer_id String, session_id String, instance String, "
    "event_ts Float64, loaded_ts Float64) ENGINE = ReplacingMergeTree() "
    "ORDER BY (stream_id, event_type, event_id)",
)
_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>1</console></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{data}/</path>
    <tmp_path>{data}/tmp/</tmp_path>
    <user_files_path>{data}/user_files/</user_files_path>
    <format_schema_path>{data}/format_schemas/</format_schema_path>
    <mark_cache_size>5368709</mark_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
"""
_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseError(Exception):
    """A statement the server refused or could not be sent."""


def render_config(folder: Path, http_port: int, tcp_port: int) -> Path:
    """A private configuration (loopback only, its own data folder) in `folder`."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (folder / "users.xml").write_text(_USERS)
    path = folder / "config.xml"
    path.write_text(_CONFIG.format(http_port=http_port, tcp_port=tcp_port, data=data))
    return path


def server_command(config: Path) -> list[str]:
    return ["/usr/sbin/clickhouse-server", f"--config-file={config}"]


def query(url: str, statement: str, body: bytes | None = None, timeout_s: float = 10.0) -> str:
    """Run one statement; `body` is sent as the data of an INSERT."""
    if body is None:
        target, data = url, statement.encode()
    else:
        target, data = f"{url}/?{urllib.parse.urlencode({'query': statement})}", body
    try:
        with urllib.request.urlopen(urllib.request.Request(target, data=data),
                                    timeout=timeout_s) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:
        raise ClickHouseError(exc.read().decode(errors="replace")[:300].strip()) from None
    except OSError as exc:
        raise ClickHouseError(f"{url}: {exc}") from None


def ensure_schema(url: str) -> None:
    for statement in SCHEMA:
        query(url, statement)


def pings(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
