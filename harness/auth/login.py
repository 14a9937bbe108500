"""Tokens from the target's login endpoint (scenario `auth.mode: login`): one login per line of
a credentials file (`username:password`), before the load starts. The passwords and the tokens
stay in memory: neither is written to the results, the logs or the terminal."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.auth.keys import expiry_s, utc
from harness.config.scenario import LoginSettings
from harness.errors import TargetUnreachable
from records.errors import InputError

LOGIN_TIMEOUT_S = 10.0
MAX_LOGINS = 1000  # like minted tokens: one user per viewer up to this many, then reused


@dataclass(frozen=True)
class Credential:
    line: int
    username: str
    password: str

    def __repr__(self) -> str:  # a traceback or log line never shows the password
        return f"Credential(line={self.line}, username={self.username!r})"


def read_credentials(path: Path) -> list[Credential]:
    """Every `username:password` line of `path` (blank lines and `#` comments skipped);
    raises InputError naming every bad line."""
    where = f"auth.login.credentials_file {path}"
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError([f"{where}: {exc.strerror or exc}"]) from None
    found, bad = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, password = line.partition(":")
        if not sep or not username or not password:
            bad.append(number)
            continue
        found.append(Credential(number, username, password))
    problems = []
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" …" if len(bad) > 5 else "")
        problems.append(f"{where}: {len(bad)} lines are not `username:password` (lines {shown})")
    if not found and not bad:
        problems.append(f"{where}: no credentials (one `username:password` per line)")
    if problems:
        raise InputError(problems)
    return found


def login_url(url: str, api_base: str) -> str:
    """An absolute URL as given; a path is taken relative to the target's API origin."""
    if url.startswith(("http://", "https://")):
        return url
    origin = httpx.URL(api_base)
    return str(origin.copy_with(path=url, query=None))


def field_at(document: Any, dotted: str) -> Any:
    """`document["a"]["b"]` for `dotted` = "a.b", or None when a step is missing."""
    for step in dotted.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document


def login_tokens(spec: LoginSettings, api_base: str, count: int,
                 run_s: float) -> tuple[str, ...]:
    """Log in with the first `count` credentials (at most MAX_LOGINS) and return their tokens.
    Every failed login is reported at once (InputError: the credentials or the field names
    are wrong); an endpoint that cannot be reached raises TargetUnreachable. Tokens that
    expire before the run would end are refused, as a token file's are."""
    wanted = max(1, min(count, MAX_LOGINS))
    credentials = read_credentials(Path(spec.credentials_file))[:wanted]
    url = login_url(spec.url, api_base)
    tokens, problems = [], []
    with httpx.Client(timeout=LOGIN_TIMEOUT_S) as client:
        for credential in credentials:
            token, problem = _login_once(client, url, spec, credential)
            if token is not None:
                tokens.append(token)
            if problem is not None:
                problems.append(problem)
    ends_s = time.time() + run_s
    expiring = sorted(e for e in map(expiry_s, tokens) if e is not None and e < ends_s)
    if expiring:
        problems.append(f"auth.login: {len(expiring)} of {len(tokens)} tokens expire before "
                        f"the run ends at {utc(ends_s)} (the first at {utc(expiring[0])})")
    if problems:
        raise InputError(problems, hint="check auth.login in the scenario and the credentials "
                                        "file (docs/scenarios.md, auth.login)")
    return tuple(tokens)


def _login_once(client: httpx.Client, url: str, spec: LoginSettings,
                credential: Credential) -> tuple[str | None, str | None]:
    where = f"auth.login: line {credential.line} ({credential.username})"
    try:
        answer = client.post(url, json={spec.username_field: credential.username,
                                        spec.password_field: credential.password})
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"login endpoint {url} unreachable: "
                                f"{type(exc).__name__}: {exc}") from None
    if answer.status_code >= 400:
        return None, f"{where}: {url} answered {answer.status_code}"
    try:
        token = field_at(answer.json(), spec.token_field)
    except ValueError:
        return None, f"{where}: {url} answered {answer.status_code} without JSON"
    if not isinstance(token, str) or not token:
        return None, f"{where}: no string at `{spec.token_field}` in the answer"
    return token, None
