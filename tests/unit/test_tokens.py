"""Token verification without a server: every way a token can be wrong."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.auth.minting import TokenMinter, hs_signed_with_public_key, tampered, unsigned
from stack.service.apierror import ApiError
from stack.service.config import Settings
from stack.service.tokens import TokenVerifier, bearer_token

SECRET = "unit-test-secret-0123456789abcdefghij"


def hs_verifier() -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=SECRET))


def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(ApiError) as failure:
        verifier.verify(token)
    assert failure.value.status == 401 and failure.value.code == "UNAUTHORIZED"
    return failure.value.message


def test_valid_token_gives_the_principal() -> None:
    user = uuid.uuid4()
    principal = hs_verifier().verify(TokenMinter("HS256", SECRET).mint(user, admin=True))
    assert principal.user_id == user and principal.is_admin


def test_every_bad_token_is_401() -> None:
    verifier, minter = hs_verifier(), TokenMinter("HS256", SECRET)
    good = minter.mint()
    assert rejected(verifier, minter.expired()) == "token expired"
    assert "audience" in rejected(verifier, minter.mint(audience="other"))
    rejected(verifier, TokenMinter("HS256", "another-secret-9876543210-zyxwvutsrq").mint())
    rejected(verifier, unsigned(good))
    rejected(verifier, tampered(good, role="admin"))
    rejected(verifier, "not-a-token")
    rejected(verifier, good + "x")


def test_rs256_refuses_hs_confusion() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    verifier = TokenVerifier(Settings(jwt_algorithm="RS256", jwt_public_key=public_pem))
    assert verifier.verify(TokenMinter("RS256", private_pem).mint()).role == "user"
    rejected(verifier, hs_signed_with_public_key(public_pem))
    rejected(verifier, TokenMinter("HS256", SECRET).mint())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Token abc", "Basic x"])
def test_malformed_authorization_headers(header: str | None) -> None:
    with pytest.raises(ApiError) as failure:
        bearer_token(header)
    assert failure.value.status == 401


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"
