"""Where the harness gets its signing key: the local stack's key files, an environment variable
holding an HS256 secret, or an RS256 private key file."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
from pathlib import Path

from harness.auth.minting import TokenMinter
from records.errors import InputError
from stack.jwtkeys import signing_key


def stack_algorithm(run_dir: Path) -> str:
    try:
        options = json.loads((run_dir / "options.json").read_text())
    except FileNotFoundError:
        return "HS256"
    return str(options.get("jwt_algorithm", "HS256"))


def minter_for(*, run_dir: Path, secret_env: str | None = None, key_file: Path | None = None,
               algorithm: str | None = None, named_by: str = "--") -> TokenMinter:
    """A minter from an explicit secret or key, else from the local stack in `run_dir`.
    `named_by` is how errors name the setting: "--" (the CLI's flags) or "auth." (a
    scenario's)."""
    if secret_env:
        secret = os.environ.get(secret_env, "")
        if not secret:
            raise InputError([f"{_setting(named_by, 'secret_env')} {secret_env}: the "
                              "environment variable is unset or empty"],
                             hint=f"export {secret_env}=… first")
        return TokenMinter("HS256", secret)
    if key_file:
        try:
            return TokenMinter("RS256", key_file.read_text())
        except OSError as exc:
            raise InputError([f"{_setting(named_by, 'key_file')} {key_file}: "
                              f"{exc.strerror}"]) from None
    chosen = algorithm or stack_algorithm(run_dir)
    try:
        return TokenMinter(chosen, signing_key(run_dir, chosen))
    except FileNotFoundError:
        raise InputError([f"no stack keys in {run_dir}"],
                         hint="start the stack with `nova-harness stack up`, or pass "
                              "--secret-env / --key-file") from None


def _setting(named_by: str, name: str) -> str:
    return f"--{name.replace('_', '-')}" if named_by == "--" else f"{named_by}{name}"


# Minted tokens must outlive the run: the contract's 1-hour access tokens would make a 4-hour
# soak's reconnects fail with 401 after the first hour. The margin covers stack start, publishing,
# the ramp-down and a resumed run's setup.
TOKEN_MARGIN_S = 3600.0


def mint_for_run(minter: TokenMinter, count: int, run_s: float) -> tuple[str, ...]:
    """`count` tokens for distinct users (at least one, at most 1000: one user per token spreads
    per-user rate limits) that stay valid for `run_s` plus TOKEN_MARGIN_S."""
    lifetime_s = max(run_s, 0.0) + TOKEN_MARGIN_S
    return tuple(minter.mint(expires_in_s=lifetime_s) for _ in range(max(1, min(count, 1000))))


def read_token_file(path: Path) -> tuple[str, ...]:
    """The non-blank lines of a token file, stripped."""
    return tuple(ln.strip() for ln in path.read_text().splitlines() if ln.strip())


def expiry_s(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (the target verifies); infinity
    for a JWT without one, None for something that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(claims, dict):
            return None
        return float(claims.get("exp", math.inf))
    except (ValueError, TypeError):
        return None


def token_file_problems(path: Path, run_s: float, now_s: float) -> list[str]:
    """Every reason the token file cannot carry a run of `run_s` starting at `now_s`: missing
    file, no tokens, lines that are not JWTs, tokens that expire before the run ends."""
    where = f"auth.token_file {path}"
    try:
        tokens = read_token_file(path)
    except OSError as exc:
        return [f"{where}: {exc.strerror or exc}"]
    if not tokens:
        return [f"{where}: no tokens (one JWT per line)"]
    ends_s = now_s + run_s
    expiries = [expiry_s(token) for token in tokens]
    not_jwt = [n for n, exp_s in enumerate(expiries, start=1) if exp_s is None]
    expiring = sorted(exp_s for exp_s in expiries if exp_s is not None and exp_s < ends_s)
    problems = []
    if not_jwt:
        shown = ", ".join(map(str, not_jwt[:5])) + (" …" if len(not_jwt) > 5 else "")
        problems.append(f"{where}: {len(not_jwt)} of {len(tokens)} lines are not JWTs "
                        f"(lines {shown})")
    if expiring:
        problems.append(f"{where}: {len(expiring)} of {len(tokens)} tokens expire before the "
                        f"run ends at {utc(ends_s)} (the first at {utc(expiring[0])}); mint "
                        f"tokens that live at least {int(run_s + TOKEN_MARGIN_S)} s")
    return problems


def utc(epoch_s: float) -> str:
    """`epoch_s` as an ISO 8601 UTC time to the second."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
