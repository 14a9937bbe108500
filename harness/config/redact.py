"""Credentials inside strings the harness writes out (a DSN or URL in a scenario, an
override): `scheme://user:SECRET@host` and libpq's `password=SECRET` become `***`, and so does
the value of an environment setting whose name says it holds one (`NOVA_JWT_SECRET` in a
scenario's `stack.service_env`)."""

from __future__ import annotations

import re
from typing import Any

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^/:@\s]*:)[^@\s/]+(?=@)")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
# Upper-case names only: those are environment variables; a scenario's own lower-case fields
# (`secret_env`, `token_file`, `key_file`) name where a secret is, not the secret.
SECRET_SETTING = re.compile(r"^[A-Z0-9_]*(SECRET|PASSWORD|TOKEN|KEY)[A-Z0-9_]*$")


def redact_credentials(value: Any) -> Any:
    """`value` with every password in its strings (nested dicts and lists too) replaced."""
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\g<head>***", value)
        return _KEYWORD_PASSWORD.sub(r"\g<head>***", value)
    if isinstance(value, dict):
        return {key: "***" if isinstance(key, str) and SECRET_SETTING.match(key)
                else redact_credentials(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_credentials(item) for item in value]
    return value
