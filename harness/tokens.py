"""Where the harness gets its signing key: the local stack's key files, an environment variable
holding an HS256 secret, or an RS256 private key file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.auth import TokenMinter
from harness.errors import InputError
from stack.jwtkeys import signing_key


def stack_algorithm(run_dir: Path) -> str:
    try:
        options = json.loads((run_dir / "options.json").read_text())
    except FileNotFoundError:
        return "HS256"
    return str(options.get("jwt_algorithm", "HS256"))


def minter_for(*, run_dir: Path, secret_env: str | None = None, key_file: Path | None = None,
               algorithm: str | None = None) -> TokenMinter:
    """A minter from an explicit secret or key, else from the local stack in `run_dir`."""
    if secret_env:
        secret = os.environ.get(secret_env, "")
        if not secret:
            raise InputError([f"--secret-env {secret_env}: the variable is unset or empty"])
        return TokenMinter("HS256", secret)
    if key_file:
        try:
            return TokenMinter("RS256", key_file.read_text())
        except OSError as exc:
            raise InputError([f"--key-file {key_file}: {exc.strerror}"]) from None
    chosen = algorithm or stack_algorithm(run_dir)
    try:
        return TokenMinter(chosen, signing_key(run_dir, chosen))
    except FileNotFoundError:
        raise InputError([f"no stack keys in {run_dir}"],
                         hint="start the stack with `nova-harness stack up`, or pass "
                              "--secret-env / --key-file") from None
