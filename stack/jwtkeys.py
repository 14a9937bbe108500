"""JWT key material of a local stack, kept in `<run-dir>/secrets/` (mode 0600), never in the
state file or logs."""

from __future__ import annotations

import os
import secrets as pysecrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def secrets_dir(run_dir: Path) -> Path:
    return run_dir / "secrets"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_keys(run_dir: Path) -> None:
    """Create the HS256 secret and the RS256 key pair once per run folder."""
    folder = secrets_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if not (folder / "jwt_secret").exists():
        _write_private(folder / "jwt_secret", pysecrets.token_urlsafe(48).encode())
    if not (folder / "jwt_private.pem").exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(folder / "jwt_private.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (folder / "jwt_public.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def service_jwt_env(run_dir: Path, algorithm: str) -> dict[str, str]:
    """The NOVA_JWT_* variables that point a service instance at this stack's keys."""
    folder = secrets_dir(run_dir)
    if algorithm == "RS256":
        return {"NOVA_JWT_ALGORITHM": "RS256",
                "NOVA_JWT_PUBLIC_KEY_FILE": str(folder / "jwt_public.pem")}
    return {"NOVA_JWT_ALGORITHM": "HS256",
            "NOVA_JWT_SECRET": (folder / "jwt_secret").read_text().strip()}


def signing_key(run_dir: Path, algorithm: str) -> str:
    """The key the harness signs this stack's tokens with."""
    folder = secrets_dir(run_dir)
    name = "jwt_private.pem" if algorithm == "RS256" else "jwt_secret"
    return (folder / name).read_text().strip()
