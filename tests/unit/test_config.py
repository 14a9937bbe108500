from __future__ import annotations

import pytest

from stack.errors import ConfigError
from stack.service.config import settings_from_env

SECRET = "s" * 32


def test_defaults_with_a_secret() -> None:
    settings = settings_from_env({"NOVA_JWT_SECRET": SECRET})
    assert settings.jwt_algorithm == "HS256" and settings.jwt_audience == "nova-streaming"
    assert settings.ws_ping_interval_s == 30 and settings.ws_pong_timeout_s == 60
    assert settings.viewer_coalesce_ms == 100 and settings.jwt_leeway_s == 0
    assert SECRET not in repr(settings)  # secrets stay out of logs and reprs


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as failure:
        settings_from_env({"NOVA_PORT": "eighty", "NOVA_WS_PING_INTERVAL_S": "soon",
                           "NOVA_VIEWER_COALESCE_MS": "250"})
    message = str(failure.value)
    for name in ("NOVA_PORT", "NOVA_WS_PING_INTERVAL_S", "NOVA_JWT_SECRET",
                 "NOVA_VIEWER_COALESCE_MS"):
        assert name in message


def test_rs256_needs_a_public_key(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_KEY"):
        settings_from_env({"NOVA_JWT_ALGORITHM": "RS256"})
    with pytest.raises(ConfigError, match="cannot be read"):
        settings_from_env({"NOVA_JWT_ALGORITHM": "RS256",
                           "NOVA_JWT_PUBLIC_KEY_FILE": "/nonexistent/key.pem"})


def test_cors_origins_are_a_list() -> None:
    settings = settings_from_env({"NOVA_JWT_SECRET": SECRET,
                                  "NOVA_CORS_ORIGINS": "https://a.test, https://b.test"})
    assert settings.cors_origins == ("https://a.test", "https://b.test")


def test_malloc_trim_interval() -> None:
    assert settings_from_env({"NOVA_JWT_SECRET": SECRET}).malloc_trim_s == 60
    off = settings_from_env({"NOVA_JWT_SECRET": SECRET, "NOVA_MALLOC_TRIM_S": "0"})
    assert off.malloc_trim_s == 0
    with pytest.raises(ConfigError, match="NOVA_MALLOC_TRIM_S must be 0"):
        settings_from_env({"NOVA_JWT_SECRET": SECRET, "NOVA_MALLOC_TRIM_S": "-5"})
