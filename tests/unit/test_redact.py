"""Credentials in scenario strings never reach the manifest."""

from __future__ import annotations

from harness.redact import redact_credentials


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
