"""JWT cases (HS256 and RS256), and per-IP / per-user rate limits, on real service processes."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from harness.auth.minting import TokenMinter, hs_signed_with_public_key, tampered, unsigned
from stack.jwtkeys import signing_key
from tests.support import RunningStack, extra_instance


def status_with(base: str, token: str) -> int:
    return httpx.get(f"{base}/api/v1/streams/active",
                     headers={"Authorization": f"Bearer {token}"}).status_code


def inside_one_window(window_s: int, needed_s: float = 5.0) -> None:
    """The limiter counts in fixed windows aligned on the epoch: wait out a window that ends
    within `needed_s`, so the requests of one test fall into one window."""
    left_s = window_s - time.time() % window_s
    if left_s < needed_s:
        time.sleep(left_s + 0.05)


def test_hs256_token_cases(stack: RunningStack) -> None:
    good = stack.minter.mint()
    assert status_with(stack.api, good) == 200
    assert status_with(stack.api, TokenMinter("HS256", "x" * 40).mint()) == 401  # wrong key
    assert status_with(stack.api, stack.minter.mint(audience="someone-else")) == 401
    assert status_with(stack.api, stack.minter.expired()) == 401
    assert status_with(stack.api, unsigned(good)) == 401
    assert status_with(stack.api, tampered(good, role="admin")) == 401
    no_sub = jwt.encode({"aud": "nova-streaming", "exp": int(time.time()) + 60,
                         "iat": int(time.time())}, signing_key(stack.run_dir, "HS256"),
                        algorithm="HS256")
    assert status_with(stack.api, no_sub) == 401


def test_rs256_instance_accepts_rs_and_refuses_confusion(stack: RunningStack) -> None:
    private_pem = signing_key(stack.run_dir, "RS256")
    public_pem = (stack.run_dir / "secrets" / "jwt_public.pem").read_text()
    rs = TokenMinter("RS256", private_pem)
    with extra_instance(stack, "rs256", NOVA_JWT_ALGORITHM="RS256") as base:
        assert status_with(base, rs.mint()) == 200
        assert status_with(base, rs.expired()) == 401
        assert status_with(base, stack.minter.mint()) == 401  # an HS256 token
        # HS/RS confusion: an HS256 token whose secret is the server's public key.
        assert status_with(base, hs_signed_with_public_key(public_pem)) == 401
        assert status_with(base, unsigned(rs.mint())) == 401


def test_rate_limit_per_ip_answers_429_with_retry_after(stack: RunningStack) -> None:
    # Buckets live in Redis, shared by every instance with the same window: a window length
    # no other test uses keeps this instance's address bucket to itself.
    with extra_instance(stack, "limited-ip", NOVA_RATE_LIMIT_IP="5",
                        NOVA_RATE_LIMIT_WINDOW_S="37") as base:
        tokens = [stack.minter.mint() for _ in range(8)]
        inside_one_window(37)
        statuses = [status_with(base, t) for t in tokens]  # many users, one address
        assert statuses[:5] == [200] * 5
        assert statuses[5:] == [429] * 3
        response = httpx.get(f"{base}/api/v1/streams/active",
                             headers={"Authorization": f"Bearer {tokens[0]}",
                                      "X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 429, "a client-set X-Forwarded-For must not bypass"
        assert response.json()["error"] == "RATE_LIMITED"
        assert 1 <= int(response.headers["Retry-After"]) <= 37
        assert httpx.get(f"{base}/health").status_code == 200  # health is never limited


def test_rate_limit_per_user(stack: RunningStack) -> None:
    with extra_instance(stack, "limited-user", NOVA_RATE_LIMIT_USER="3",
                        NOVA_RATE_LIMIT_WINDOW_S="30") as base:
        heavy = stack.minter.mint(uuid.uuid4())
        inside_one_window(30)
        statuses = [status_with(base, heavy) for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert status_with(base, stack.minter.mint()) == 200  # another user is unaffected


@pytest.mark.parametrize("window_s", ["0", "x"])
def test_bad_service_settings_fail_at_start(stack: RunningStack, window_s: str) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "stack.service"], capture_output=True,
                            text=True, env={"NOVA_RATE_LIMIT_WINDOW_S": window_s,
                                            "PATH": "/usr/bin:/bin"}, timeout=30)
    assert result.returncode == 2
    assert "NOVA_JWT_SECRET" in result.stderr and "NOVA_RATE_LIMIT_WINDOW_S" in result.stderr
