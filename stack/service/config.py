"""Service settings, read once from environment variables (documented in docs/service.md)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from stack.errors import ConfigError

N = TypeVar("N", int, float)
REGIONS = ("us-west-2", "us-east-1", "eu-central-1", "ap-southeast-1")


@dataclass(frozen=True)
class Settings:
    """Every knob of the reference service. Defaults suit a single local instance."""

    host: str = "127.0.0.1"
    port: int = 8080
    instance_id: str = field(default_factory=socket.gethostname)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/nova_streaming"
    db_pool_max: int = 10
    db_timeout_s: float = 3.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 1.0
    jwt_algorithm: str = "HS256"
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key: str = field(default="", repr=False)
    jwt_audience: str = "nova-streaming"
    jwt_leeway_s: float = 0.0
    rtmp_url: str = "rtmp://127.0.0.1:1935/live"
    hls_base: str = "http://127.0.0.1:8081"
    ws_ping_interval_s: float = 30.0
    ws_pong_timeout_s: float = 60.0
    viewer_coalesce_ms: int = 100
    rate_limit_window_s: int = 60
    rate_limit_ip: int = 6000
    rate_limit_user: int = 3000
    cors_origins: tuple[str, ...] = ("*",)
    migrate_on_start: bool = True
    log_level: str = "INFO"
    malloc_trim_s: float = 60.0
    # An extension of Nova's contract: a publisher that drops may republish the same key
    # within this many seconds and the stream carries on (0: the drop ends it, as documented).
    reconnect_grace_s: float = 0.0
    # The analytics path (docs/service.md): empty bootstrap = no events published.
    kafka_bootstrap: str = ""
    kafka_topic: str = "nova.stream-events"
    analytics_max_pending: int = 100_000
    analytics_ack_timeout_s: float = 10.0
    broken_viewer_count_offset: int = 0
    broken_no_auth_routes: tuple[str, ...] = ()
    broken_skip_owner_check: bool = False
    broken_unknown_stream_500: bool = False
    broken_trust_forwarded_for: bool = False
    broken_leak_per_viewer_bytes: int = 0


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "0").lower() in ("1", "true", "yes")


def _number(env: Mapping[str, str], name: str, default: N, errors: list[str]) -> N:
    """The variable parsed as the type of its default; a bad value is recorded, not raised."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return type(default)(raw)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        errors.append(f"{name}={raw!r} is not {kind}")
        return default


def _read_key(env: Mapping[str, str], errors: list[str]) -> str:
    inline = env.get("NOVA_JWT_PUBLIC_KEY", "")
    path = env.get("NOVA_JWT_PUBLIC_KEY_FILE", "")
    if inline or not path:
        return inline
    try:
        return Path(path).read_text()
    except OSError as exc:
        errors.append(f"NOVA_JWT_PUBLIC_KEY_FILE={path!r} cannot be read: {exc.strerror}")
        return ""


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from NOVA_* variables; raise ConfigError listing every bad one."""
    env = os.environ if env is None else env
    errors: list[str] = []
    d = Settings()
    algorithm = env.get("NOVA_JWT_ALGORITHM", d.jwt_algorithm).upper()
    secret = env.get("NOVA_JWT_SECRET", "")
    public_key = _read_key(env, errors)
    if algorithm not in ("HS256", "RS256"):
        errors.append(f"NOVA_JWT_ALGORITHM={algorithm!r} must be HS256 or RS256")
    elif algorithm == "HS256" and len(secret) < 32:
        errors.append("NOVA_JWT_SECRET must be set (at least 32 characters, RFC 7518) for HS256")
    elif algorithm == "RS256" and "PUBLIC KEY" not in public_key:
        errors.append("NOVA_JWT_PUBLIC_KEY or NOVA_JWT_PUBLIC_KEY_FILE must hold a PEM public key")
    origins = tuple(o.strip() for o in env.get("NOVA_CORS_ORIGINS", "*").split(",") if o.strip())
    settings = Settings(
        host=env.get("NOVA_HOST", d.host),
        port=_number(env, "NOVA_PORT", d.port, errors),
        instance_id=env.get("NOVA_INSTANCE_ID") or d.instance_id,
        database_url=env.get("NOVA_DATABASE_URL", d.database_url),
        db_pool_max=_number(env, "NOVA_DB_POOL_MAX", d.db_pool_max, errors),
        db_timeout_s=_number(env, "NOVA_DB_TIMEOUT_S", d.db_timeout_s, errors),
        redis_url=env.get("NOVA_REDIS_URL", d.redis_url),
        redis_timeout_s=_number(env, "NOVA_REDIS_TIMEOUT_S", d.redis_timeout_s, errors),
        jwt_algorithm=algorithm,
        jwt_secret=secret,
        jwt_public_key=public_key,
        jwt_audience=env.get("NOVA_JWT_AUDIENCE", d.jwt_audience),
        jwt_leeway_s=_number(env, "NOVA_JWT_LEEWAY_S", d.jwt_leeway_s, errors),
        rtmp_url=env.get("NOVA_RTMP_URL", d.rtmp_url),
        hls_base=env.get("NOVA_HLS_BASE", d.hls_base).rstrip("/"),
        ws_ping_interval_s=_number(env, "NOVA_WS_PING_INTERVAL_S", d.ws_ping_interval_s, errors),
        ws_pong_timeout_s=_number(env, "NOVA_WS_PONG_TIMEOUT_S", d.ws_pong_timeout_s, errors),
        viewer_coalesce_ms=_number(env, "NOVA_VIEWER_COALESCE_MS", d.viewer_coalesce_ms, errors),
        rate_limit_window_s=_number(env, "NOVA_RATE_LIMIT_WINDOW_S", d.rate_limit_window_s, errors),
        rate_limit_ip=_number(env, "NOVA_RATE_LIMIT_IP", d.rate_limit_ip, errors),
        rate_limit_user=_number(env, "NOVA_RATE_LIMIT_USER", d.rate_limit_user, errors),
        cors_origins=origins or ("*",),
        migrate_on_start=env.get("NOVA_MIGRATE_ON_START", "1") not in ("0", "false", "no"),
        log_level=env.get("NOVA_LOG_LEVEL", d.log_level).upper(),
        malloc_trim_s=_number(env, "NOVA_MALLOC_TRIM_S", d.malloc_trim_s, errors),
        reconnect_grace_s=_number(env, "NOVA_RECONNECT_GRACE_S", d.reconnect_grace_s, errors),
        kafka_bootstrap=env.get("NOVA_KAFKA_BOOTSTRAP", d.kafka_bootstrap),
        kafka_topic=env.get("NOVA_KAFKA_TOPIC", d.kafka_topic),
        analytics_max_pending=_number(env, "NOVA_ANALYTICS_MAX_PENDING",
                                      d.analytics_max_pending, errors),
        analytics_ack_timeout_s=_number(env, "NOVA_ANALYTICS_ACK_TIMEOUT_S",
                                        d.analytics_ack_timeout_s, errors),
        broken_viewer_count_offset=_number(env, "NOVA_BROKEN_VIEWER_COUNT_OFFSET",
                                           d.broken_viewer_count_offset, errors),
        broken_no_auth_routes=tuple(r.strip() for r in env.get(
            "NOVA_BROKEN_NO_AUTH_ROUTES", "").split(",") if r.strip()),
        broken_skip_owner_check=_flag(env, "NOVA_BROKEN_SKIP_OWNER_CHECK"),
        broken_unknown_stream_500=_flag(env, "NOVA_BROKEN_UNKNOWN_STREAM_500"),
        broken_trust_forwarded_for=_flag(env, "NOVA_BROKEN_TRUST_FORWARDED_FOR"),
        broken_leak_per_viewer_bytes=_number(env, "NOVA_BROKEN_LEAK_PER_VIEWER_BYTES",
                                             d.broken_leak_per_viewer_bytes, errors),
    )
    if settings.rate_limit_window_s < 1:
        errors.append("NOVA_RATE_LIMIT_WINDOW_S must be at least 1")
    if not 0 < settings.viewer_coalesce_ms <= 100:
        errors.append("NOVA_VIEWER_COALESCE_MS must be between 1 and 100 (the contract's bound)")
    if settings.malloc_trim_s < 0:
        errors.append("NOVA_MALLOC_TRIM_S must be 0 (off) or a positive number of seconds")
    if settings.reconnect_grace_s < 0:
        errors.append("NOVA_RECONNECT_GRACE_S must be 0 (off) or a positive number of seconds")
    if settings.analytics_max_pending < 1:
        errors.append("NOVA_ANALYTICS_MAX_PENDING must be at least 1")
    if settings.analytics_ack_timeout_s < 1:
        errors.append("NOVA_ANALYTICS_ACK_TIMEOUT_S must be at least 1 second")
    if errors:
        raise ConfigError("; ".join(errors))
    return settings
