"""Checklist §17, security: every route refuses a missing token; tampered, foreign-key,
`alg: none`, HS/RS-confused, wrong-audience and expired tokens are refused; hostile input never
gives a 5xx nor comes back as HTML; rate limits hold per user and per address, also against
rotating X-Forwarded-For and many tokens; an https target offers only TLS ≥ 1.2 with a valid,
not nearly expired certificate. The rate-limit checks exhaust the limits on purpose; on a
loopback target every check speaks from its own address, so no other check feels it."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.auth.minting import AUDIENCE, hs_signed_with_public_key, tampered, unsigned
from harness.errors import CheckSkipped
from harness.suites.base import LOW_LIMITS_HINT, Session, check, expect
from harness.suites.tls import tls_findings

RATE_LIMIT_BUDGET = 400
SQL_PAYLOADS = ("' OR '1'='1", "1; DROP TABLE streams; --", "\" OR 1=1 --",
                "' UNION SELECT rtmp_key FROM streams --")
XSS_PAYLOAD = "<script>alert('nova')</script><img src=x onerror=alert(1)>"
UNICODE_TITLES = {"emoji": "live 🎥🔥", "rtl override": "abc\u202edcba", "zero width":
                  "a\u200bb\u200dc", "combining": "e\u0301\u0301\u0301", "nul": "nul\u0000byte",
                  "astral": "\U0001d54f\U0001f600", "lone surrogate": "\ud800"}


def _routes(s: Session, stream_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, JSON body) of every token-protected route the profile names."""
    profile = s.target.profile
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", profile.path("create"), profile.create_payload("t", "d", "us-west-2")),
        ("GET", profile.path("get", stream_id), None),
        ("POST", profile.path("get", stream_id) + "/quality",
         {"quality": "480p", "bitrate_kbps": 1000, "fps": 30})]
    if profile.paths.delete:
        routes.append(("DELETE", profile.path("delete", stream_id), None))
    if profile.listing.needs_auth:
        routes.append(("GET", profile.path("list_active"), None))
    return routes


@check("security", "auth-sweep", "§17 every route without a token → 401 (REST) or refused "
                                 "before the upgrade (viewer socket)")
def auth_sweep(s: Session) -> str:
    _, owner = s.user()
    stream_id = s.stream_id(s.create_stream(owner, "auth sweep"))
    wrong, routes = [], _routes(s, stream_id)
    for method, path, body in routes:
        response = s.request(method, path, json=body)
        if response.status_code != s.target.profile.errors.no_token:
            wrong.append(f"{method} {path} → {response.status_code}")
    ws_path = s.target.profile.ws.url.format(ws_base="", id=stream_id)
    handshake = s.request("GET", ws_path, headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    if handshake.status_code not in (400, 401):
        wrong.append(f"WS {ws_path} without a token → {handshake.status_code}")
    expect(not wrong, "; ".join(wrong))
    return f"{len(routes)} REST routes → 401, the socket refused before upgrade"


def _foreign_rs256(user_id: uuid.UUID) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return jwt.encode({"sub": str(user_id), "aud": AUDIENCE, "role": "admin",
                       "iat": 0, "exp": 4_102_444_800}, pem, algorithm="RS256")


@check("security", "bad-tokens", "§17 tampered, foreign-key, alg none, HS/RS confusion, wrong "
                                 "audience and expired tokens → 401")
def bad_tokens(s: Session) -> str:
    user_id, valid = s.user()
    minter = s.target.minter
    tokens = {"payload changed": tampered(valid, role="admin"),
              "foreign HS256 key": jwt.encode({"sub": str(user_id), "aud": AUDIENCE,
                                               "exp": 4_102_444_800},
                                              secrets.token_urlsafe(32), algorithm="HS256"),
              "foreign RS256 key": _foreign_rs256(user_id),
              "alg none": unsigned(valid),
              "wrong audience": minter.mint(user_id, audience="another-service"),
              "expired": minter.expired(user_id)}
    if s.target.public_key_pem:
        tokens["HS/RS confusion"] = hs_signed_with_public_key(s.target.public_key_pem, user_id)
    path = s.target.profile.path("list_active")
    accepted = {what: s.request("GET", path, token=token).status_code
                for what, token in tokens.items()}
    accepted = {w: c for w, c in accepted.items() if c != s.target.profile.errors.bad_token}
    expect(not accepted, f"not refused with 401: {accepted}")
    note = "" if s.target.public_key_pem else " (HS/RS confusion not applicable: no RS256 " \
                                              "public key given)"
    return f"{len(tokens)} kinds of bad token → 401{note}"


def _no_5xx(responses: dict[str, httpx.Response]) -> list[str]:
    return [f"{what} → {r.status_code}" for what, r in responses.items()
            if r.status_code >= 500]


def _not_html(responses: dict[str, httpx.Response], payload: str) -> list[str]:
    """Responses that echo `payload` in anything but JSON (where it is inert data)."""
    return [what for what, r in responses.items() if payload in r.text
            and not r.headers.get("content-type", "").startswith("application/json")]


@check("security", "injection", "§17 SQL and XSS payloads never give a 5xx nor come back "
                                "unescaped")
def injection(s: Session) -> str:
    _, token = s.user()
    profile = s.target.profile
    responses: dict[str, httpx.Response] = {}
    for n, payload in enumerate(SQL_PAYLOADS):
        responses[f"title #{n}"] = s.request("POST", profile.path("create"), token=token,
                                             json=profile.create_payload(payload, payload,
                                                                         "us-west-2"))
        responses[f"region #{n}"] = s.request("POST", profile.path("create"), token=token,
                                              json=profile.create_payload("t", "d", payload))
        responses[f"path #{n}"] = s.request("GET", profile.path("get", payload), token=token)
        responses[f"query #{n}"] = s.request("GET", profile.path("list_active"), token=token,
                                             params={profile.listing.limit_param: payload,
                                                     "region": payload})
    responses["xss title"] = s.request("POST", profile.path("create"), token=token,
                                       json=profile.create_payload(XSS_PAYLOAD, XSS_PAYLOAD,
                                                                   "us-west-2"))
    expect(not _no_5xx(responses), f"server errors: {_no_5xx(responses)}")
    created = responses["xss title"]
    expect(created.status_code in (201, 400), f"XSS title: HTTP {created.status_code}")
    if created.status_code == 201:
        stream_id = s.stream_id(created.json())
        responses["xss read back"] = s.request("GET", profile.path("get", stream_id),
                                               token=token)
        stored = profile.stream_field(responses["xss read back"].json(), "title")
        expect(stored == XSS_PAYLOAD, "the XSS title was altered, not stored as data")
    echoed = _not_html(responses, XSS_PAYLOAD) + _not_html(responses, SQL_PAYLOADS[0])
    expect(not echoed, f"payload echoed outside JSON: {echoed}")
    return f"{len(responses)} hostile requests: no 5xx, payloads only ever inside JSON"


@check("security", "oversized", "§17 oversized bodies and fields are refused (4xx), never 5xx")
def oversized(s: Session) -> str:
    _, token = s.user()
    profile = s.target.profile
    base = profile.create_payload("t", "d", "us-west-2")
    cases = {"title 256 chars": {**base, profile.fields.title: "x" * 256},
             "description 2001 chars": {**base, profile.fields.description: "x" * 2001},
             "11 tags": {**base, "tags": [f"t{n}" for n in range(11)]},
             "unknown field": {**base, "is_admin": True}}
    responses = {what: s.request("POST", profile.path("create"), token=token, json=body)
                 for what, body in cases.items()}
    responses["1 MiB body"] = s.request("POST", profile.path("create"), token=token,
                                        json={**base, "padding": "x" * 2**20})
    wrong = {what: r.status_code for what, r in responses.items()
             if not 400 <= r.status_code < 500}
    expect(not wrong, f"not refused with a 4xx: {wrong}")
    return ", ".join(f"{what} → {r.status_code}" for what, r in responses.items())


@check("security", "unicode", "§17 invalid UTF-8 and Unicode edge cases: no 5xx, stored as sent")
def unicode_edges(s: Session) -> str:
    _, token = s.user()
    profile = s.target.profile
    invalid = s.request("POST", profile.path("create"), token=token,
                        content=b'{"title": "\xff\xfe bad", "description": "d"}',
                        headers={"Content-Type": "application/json"})
    expect(400 <= invalid.status_code < 500, f"invalid UTF-8: HTTP {invalid.status_code}")
    outcomes = []
    for what, title in UNICODE_TITLES.items():
        # ASCII-escaped JSON: a lone surrogate travels as the escape `\ud800`, as a hostile
        # client would send it (it has no UTF-8 form).
        body = json.dumps(profile.create_payload(title, "unicode", "us-west-2")).encode()
        response = s.request("POST", profile.path("create"), token=token, content=body,
                             headers={"Content-Type": "application/json"})
        expect(response.status_code < 500, f"{what}: HTTP {response.status_code}")
        if response.status_code == 201:
            stored = profile.stream_field(response.json(), "title")
            expect(stored == title, f"{what}: stored {stored!r}, sent {title!r}")
        outcomes.append(f"{what} {response.status_code}")
    return f"invalid UTF-8 → {invalid.status_code}; " + ", ".join(outcomes)


@check("security", "tls", "§17 https: TLS ≥ 1.2 only, no weak ciphers, certificate valid and "
                          "not near expiry")
def tls(s: Session) -> str:
    if not s.target.api_base.startswith("https://"):
        raise CheckSkipped("the target is not https (TLS is terminated elsewhere or absent)")
    findings, facts = tls_findings(s.target.api_base, s.target.ca_file)
    s.note(f"TLS handshakes with {s.target.api_base}", None, facts, 0.0)
    expect(not findings, "; ".join(findings))
    return facts


def _burst(s: Session, headers_for: Any, fresh_tokens: bool) -> int | None:
    """Requests until the first 429 (how many), or None within the budget."""
    path = s.target.profile.path("get", str(uuid.uuid4()))
    _, token = s.user()
    for sent in range(1, RATE_LIMIT_BUDGET + 1):
        if fresh_tokens:
            _, token = s.user()
        response = s.client.get(path, headers={"Authorization": f"Bearer {token}",
                                               **headers_for(sent)})
        if response.status_code == s.target.profile.errors.rate_limited:
            return sent
    return None


@check("security", "rate-limit-user", "§17 rate limiting per user")
def rate_limit_user(s: Session) -> str:
    sent = _burst(s, lambda _: {}, fresh_tokens=False)
    if sent is None:
        raise CheckSkipped(f"no 429 for one user within {RATE_LIMIT_BUDGET} requests: the "
                           f"target's limit is higher ({LOW_LIMITS_HINT})")
    s.note(f"one token, {sent} requests", 429, "", 0.0)
    return f"one user limited after {sent} requests"


@check("security", "rate-limit-ip-bypass", "§17 rate limiting per address holds against "
                                           "rotating X-Forwarded-For and many tokens")
def rate_limit_ip_bypass(s: Session) -> str:
    rotating = _burst(s, lambda n: {"X-Forwarded-For": f"203.0.113.{n % 250 + 1}"},
                      fresh_tokens=True)
    s.note(f"fresh token + rotating X-Forwarded-For per request: {rotating}", 429, "", 0.0)
    if rotating is not None:
        return f"limited after {rotating} requests despite a new token and a new " \
               "X-Forwarded-For on each"
    plain = _burst(s, lambda _: {}, fresh_tokens=True)
    s.note(f"fresh token per request, no X-Forwarded-For: {plain}", 429, "", 0.0)
    expect(plain is None, f"limited after {plain} plain requests but never with rotating "
                          "X-Forwarded-For: the header bypasses the limit")
    raise CheckSkipped(f"no 429 from one address within {RATE_LIMIT_BUDGET} requests: the "
                       f"target's limit is higher ({LOW_LIMITS_HINT})")
