"""Checklist §7, service verification: the service and each dependency answer, the API and the
viewer socket accept valid tokens and refuse bad ones."""

from __future__ import annotations

import socket
import subprocess
import time
from urllib.parse import urlparse

import redis
from prometheus_client.parser import text_string_to_metric_families

from harness.auth.minting import tampered
from harness.errors import CheckSkipped
from harness.suites.actions import viewer
from harness.suites.base import Session, check, expect, expect_status
from stack.roles import pg_bindir

CONTRACT_TABLES = ("streams", "viewer_sessions", "stream_events")
CONTRACT_SERIES = ("nova_streaming_active_streams", "nova_streaming_websocket_connections",
                   "nova_streaming_peak_viewers", "nova_streaming_viewers_total",
                   "nova_streaming_stream_duration_seconds",
                   "nova_streaming_broadcast_errors_total")


@check("verify", "health", "§7 health endpoint reachable and healthy")
def health(s: Session) -> str:
    response = s.request("GET", s.target.profile.path("health"))
    expect_status(response, 200, "health")
    return f"HTTP 200 in {s.evidence[-1].elapsed_ms:.0f} ms"


def _psql(s: Session, query: str) -> str:
    if not s.target.database_url:
        raise CheckSkipped("no database DSN given (--database-url)")
    started = time.perf_counter()
    result = subprocess.run([str(pg_bindir() / "psql"), s.target.database_url, "-tAX", "-c",
                             query], capture_output=True, text=True, timeout=15)
    s.note(f"psql: {query}", result.returncode, result.stdout or result.stderr, started)
    expect(result.returncode == 0, f"psql failed: {result.stderr.strip()[:200]}")
    return result.stdout.strip()


@check("verify", "database-select", "§7 database connection: SELECT 1")
def database_select(s: Session) -> str:
    expect(_psql(s, "SELECT 1") == "1", "SELECT 1 did not return 1")
    return "SELECT 1 → 1"


@check("verify", "database-schema", "§7 database tables present and migrations applied")
def database_schema(s: Session) -> str:
    names = ",".join(f"'{t}'" for t in CONTRACT_TABLES)
    found = set(_psql(s, "SELECT table_name FROM information_schema.tables WHERE "
                         f"table_schema = 'public' AND table_name IN ({names})").split())
    missing = sorted(set(CONTRACT_TABLES) - found)
    expect(not missing, f"tables missing: {', '.join(missing)}")
    applied = _psql(s, "SELECT count(*) FROM schema_migrations")
    expect(applied.isdigit() and int(applied) > 0, "no migration recorded in schema_migrations")
    return f"tables {', '.join(CONTRACT_TABLES)} present; {applied} migrations applied"


@check("verify", "redis-ping", "§7 Redis connection: PING")
def redis_ping(s: Session) -> str:
    if not s.target.redis_url:
        raise CheckSkipped("no Redis URL given (--redis-url)")
    started = time.perf_counter()
    client = redis.Redis.from_url(s.target.redis_url, socket_timeout=5)
    try:
        answer = client.ping()
    finally:
        client.close()
    s.note("redis PING", None, str(answer), started)
    expect(answer is True, "PING was not answered")
    return "PONG"


@check("verify", "rtmp-port", "§7 RTMP ingest port accepting connections")
def rtmp_port(s: Session) -> str:
    url = urlparse(s.target.rtmp_url)
    host, port = url.hostname or "127.0.0.1", url.port or 1935
    started = time.perf_counter()
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        s.note(f"TCP connect {host}:{port}", None, str(exc), started)
        expect(False, f"RTMP port {host}:{port} refused: {exc}")
    s.note(f"TCP connect {host}:{port}", None, "connected", started)
    return f"{host}:{port} accepted a connection"


@check("verify", "list-active", "§7 GET active streams returns 200")
def list_active(s: Session) -> str:
    _, token = s.user()
    response = s.request("GET", s.target.profile.path("list_active"), token=token)
    expect_status(response, 200, "list active streams")
    listing = response.json()
    expect(isinstance(s.target.profile.streams_of(listing), list), "no stream list in the body")
    return f"HTTP 200, {len(s.target.profile.streams_of(listing))} active streams"


@check("verify", "create-missing-fields", "§7 POST /streams with missing fields returns 400")
def create_missing_fields(s: Session) -> str:
    _, token = s.user()
    response = s.request("POST", s.target.profile.path("create"), token=token, json={})
    expect_status(response, s.target.profile.errors.invalid_body, "create without fields")
    return f"HTTP {response.status_code}"


@check("verify", "metrics-text", "§7 /metrics is Prometheus text with the nova_streaming_* series")
def metrics_text(s: Session) -> str:
    response = s.request("GET", s.target.metrics_url)
    expect_status(response, 200, "/metrics")
    try:
        names = {family.name for family in text_string_to_metric_families(response.text)}
    except ValueError as exc:
        expect(False, f"/metrics is not Prometheus text: {exc}")
    # The parser names counters without their _total suffix.
    missing = [n for n in CONTRACT_SERIES if n not in names and n.removesuffix("_total")
               not in names]
    expect(not missing, f"series missing: {', '.join(missing)}")
    return f"{len(names)} families parsed, all {len(CONTRACT_SERIES)} contract series present"


@check("verify", "websocket-upgrade", "§7 the viewer socket URL upgrades and greets")
def websocket_upgrade(s: Session) -> str:
    _, token = s.user()
    stream_id = s.stream_id(s.create_stream(token))
    started = time.perf_counter()
    probe = viewer(s, stream_id, token)
    try:
        greeting = probe.wait_for("connection_established", 5.0)
    finally:
        probe.close()
    expect(greeting is not None, "no connection_established within 5 s")
    return f"upgraded, connection_established {1000 * (time.perf_counter() - started):.0f} ms " \
           "after the connect began"


@check("verify", "tokens", "§7 valid token accepted; invalid, expired and missing rejected (401)")
def tokens(s: Session) -> str:
    profile, path = s.target.profile, s.target.profile.path("list_active")
    user_id, valid = s.user()
    expect_status(s.request("GET", path, token=valid), 200, "valid token")
    refused = {"missing": s.request("GET", path),
               "invalid": s.request("GET", path, token="not-a-jwt"),
               "expired": s.request("GET", path, token=s.target.minter.expired(user_id)),
               "tampered": s.request("GET", path, token=tampered(valid, role="admin"))}
    wrong = {what: r.status_code for what, r in refused.items()
             if r.status_code != (profile.errors.no_token if what == "missing"
                                  else profile.errors.bad_token)}
    expect(not wrong, f"accepted or wrongly refused: {wrong}")
    return "valid → 200; missing, invalid, expired, tampered → 401"
