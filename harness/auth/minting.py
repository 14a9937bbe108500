"""Token minting for the harness: valid HS256/RS256 tokens, and the broken ones the security
checks need (expired, wrong audience, tampered, `alg: none`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

import jwt

AUDIENCE = "nova-streaming"


@dataclass(frozen=True)
class TokenMinter:
    """Signs tokens with one key. `key` is an HS256 secret or an RS256 private key (PEM)."""

    algorithm: str
    key: str = field(repr=False)
    audience: str = AUDIENCE

    def mint(self, user_id: uuid.UUID | None = None, *, admin: bool = False,
             expires_in_s: float = 3600, audience: str | None = None,
             issued_at: float | None = None) -> str:
        """A signed token for `user_id` (a fresh UUID when omitted)."""
        now = time.time() if issued_at is None else issued_at
        claims = {
            "sub": str(user_id or uuid.uuid4()),
            "iat": int(now),
            "exp": int(now + expires_in_s),
            "aud": audience or self.audience,
            "role": "admin" if admin else "user",
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm)

    def expired(self, user_id: uuid.UUID | None = None) -> str:
        return self.mint(user_id, expires_in_s=-60, issued_at=time.time() - 120)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(token: str) -> str:
    """The same claims with `alg: none` and no signature."""
    _, payload, _ = token.split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{payload}."


def tampered(token: str, **changes: object) -> str:
    """The same header and signature over a payload with `changes` applied."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def hs_signed_with_public_key(public_pem: str, user_id: uuid.UUID | None = None,
                              audience: str = AUDIENCE) -> str:
    """The HS/RS confusion attack: an HS256 token whose HMAC secret is the server's RS256
    public key. Built by hand because PyJWT itself refuses to sign it."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": str(user_id or uuid.uuid4()), "iat": now,
                               "exp": now + 3600, "aud": audience, "role": "admin"}).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
