"""Credentials in scenario strings never reach the manifest."""

from __future__ import annotations

from harness.config.redact import redact_credentials


def test_passwords_in_urls_and_dsns_are_replaced_everywhere() -> None:
    given = {"monitors": {"postgres_dsn": "postgresql://nova:s3cret@db:5432/nova",
                          "redis_url": "redis://:r3dis@cache:6379/0",
                          "other": ["host=db password='a b' user=x", "password=pl4in"]},
             "count": 3, "plain": "http://127.0.0.1:9090/api"}
    redacted = redact_credentials(given)
    text = str(redacted)
    for secret in ("s3cret", "r3dis", "a b", "pl4in"):
        assert secret not in text, secret
    assert redacted["monitors"]["postgres_dsn"] == "postgresql://nova:***@db:5432/nova"
    assert redacted["plain"] == "http://127.0.0.1:9090/api" and redacted["count"] == 3


def test_settings_named_as_secrets_are_replaced_but_fields_naming_where_one_is_are_not() -> None:
    given = {"stack": {"service_env": {"NOVA_JWT_SECRET": "hunter2", "NOVA_API_KEY": "k3y",
                                       "NOVA_WS_PING_INTERVAL_S": "0.25"}},
             "auth": {"secret_env": "NOVA_SECRET_VAR", "token_file": "tokens.txt"}}
    redacted = redact_credentials(given)
    assert "hunter2" not in str(redacted) and "k3y" not in str(redacted)
    assert redacted["stack"]["service_env"]["NOVA_WS_PING_INTERVAL_S"] == "0.25"
    assert redacted["auth"] == given["auth"]
