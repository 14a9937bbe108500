"""What every suite shares: the target a check talks to, the HTTP session that records every
request as evidence, the registry of checks, and the runner that turns each check into a
result (a check passes by returning, fails by raising CheckFailed, skips with CheckSkipped)."""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from harness.auth.minting import TokenMinter
from harness.config.profile import Profile
from harness.errors import CheckFailed, CheckSkipped

Status = Literal["PASS", "FAIL", "SKIPPED"]
SUITES = ("verify", "api", "e2e", "access", "security", "contract")
# Where a rate-limit check is SKIPPED: how to give the local stack limits it can reach (one
# wording for all of them: docs/checks.md).
LOW_LIMITS_HINT = ("local stack: `stack up --service-env NOVA_RATE_LIMIT_USER=100 "
                   "--service-env NOVA_RATE_LIMIT_IP=150` to have it judged")
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class ContractOptions:
    """How the contract suite generates REST requests: which OpenAPI file (None: the
    profile's), the seed that makes a run reproducible, and the examples per operation and
    generation mode (valid, invalid; and valid against a real stream where a path names one)."""

    openapi: str | None = None
    seed: int = 0
    examples: int = 20


@dataclass(frozen=True)
class Target:
    """Where the checks go and what they may use. DSN and Redis URL are optional: the checks
    that need them are SKIPPED without them."""

    api_base: str
    ws_base: str
    rtmp_url: str
    hls_base: str
    metrics_url: str
    profile: Profile
    minter: TokenMinter = field(repr=False)
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    public_key_pem: str | None = None  # the RS256 verification key, for the HS/RS confusion
    ca_file: str | None = None  # trust anchor for an https target's certificate
    contract: ContractOptions = ContractOptions()
    prometheus_url: str | None = None  # the target's Prometheus (§5/§8 checks)
    grafana_url: str | None = None
    grafana_token: str | None = field(default=None, repr=False)
    kafka_bootstrap: str | None = None  # the analytics path (§6 checks)
    clickhouse_url: str | None = None
    clickhouse_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Evidence:
    """One exchange with the target, secrets left out (tokens are never recorded)."""

    request: str
    status: int | None
    excerpt: str
    elapsed_ms: float


@dataclass(frozen=True)
class CheckResult:
    suite: str
    id: str
    checklist: str
    status: Status
    reason: str
    elapsed_ms: float
    evidence: tuple[Evidence, ...] = ()


class Session:
    """An HTTP client on the target that keeps every exchange as evidence. On a loopback
    target each check speaks from a loopback address of its own (`source_address`, any of
    127.0.0.0/8 works without set-up): a per-address rate limit then counts each check apart,
    so the rate-limit checks, which exhaust it on purpose, cannot fail the checks after them."""

    def __init__(self, target: Target, source_address: str | None = None) -> None:
        self.target = target
        self.source_address = source_address
        self.evidence: list[Evidence] = []
        transport = httpx.HTTPTransport(local_address=source_address) if source_address \
            else None
        self.client = httpx.Client(base_url=target.api_base, timeout=10.0, transport=transport)

    def request(self, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            response = self.client.request(method, path, headers=sent, **kwargs)
        except httpx.HTTPError as exc:
            self.note(f"{method} {path}", None, f"{type(exc).__name__}: {exc}", started)
            raise CheckFailed(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        self.note(f"{method} {path}", response.status_code, response.text, started)
        return response

    def note(self, request: str, status: int | None, excerpt: str, started: float) -> None:
        """Record an exchange made some other way (socket, psql, ffmpeg)."""
        self.evidence.append(Evidence(request, status, excerpt[:EXCERPT_CHARS],
                                      round((time.perf_counter() - started) * 1000, 2)))

    def close(self) -> None:
        self.client.close()

    # -- helpers most checks need ---------------------------------------------------------

    def user(self, admin: bool = False) -> tuple[uuid.UUID, str]:
        user_id = uuid.uuid4()
        return user_id, self.target.minter.mint(user_id, admin=admin)

    def create_stream(self, token: str, title: str = "checklist stream") -> dict[str, Any]:
        payload = self.target.profile.create_payload(title, "created by nova-harness check",
                                                     "us-west-2")
        response = self.request("POST", self.target.profile.path("create"), token=token,
                                json=payload)
        expect(response.status_code in (200, 201),
               f"creating a stream answered {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    def stream_id(self, stream: dict[str, Any]) -> str:
        return str(self.target.profile.stream_field(stream, "id"))


def expect(condition: bool, reason: str) -> None:
    """Fail the running check with `reason` unless `condition` holds."""
    if not condition:
        raise CheckFailed(reason)


def expect_status(response: httpx.Response, wanted: int, what: str) -> None:
    expect(response.status_code == wanted,
           f"{what}: HTTP {response.status_code}, expected {wanted}")


CheckFunction = Callable[[Session], str]


@dataclass(frozen=True)
class Check:
    suite: str
    id: str
    checklist: str
    run: CheckFunction


REGISTRY: dict[str, list[Check]] = {suite: [] for suite in SUITES}
# Suites whose checks depend on the target (one per operation of its OpenAPI file): each
# expander lists them when the suite runs.
Expander = Callable[["Target"], list[Check]]
EXPANDERS: dict[str, list[Expander]] = {suite: [] for suite in SUITES}


def check(suite: str, check_id: str, checklist: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check; the function returns the PASS reason (what it saw)."""
    def register(function: CheckFunction) -> CheckFunction:
        REGISTRY[suite].append(Check(suite, check_id, checklist, function))
        return function
    return register


def expander(suite: str) -> Callable[[Expander], Expander]:
    """Register a function that lists a suite's target-dependent checks."""
    def register(function: Expander) -> Expander:
        EXPANDERS[suite].append(function)
        return function
    return register


def checks_of(suite: str, target: Target) -> list[Check]:
    """A suite's checks against `target`: the registered ones, then the expanders'."""
    return REGISTRY[suite] + [item for build in EXPANDERS[suite] for item in build(target)]


def source_address_for(target: Target, number: int) -> str | None:
    """Check `number`'s own loopback address when the target is on loopback, else None."""
    host = urlsplit(target.api_base).hostname or ""
    try:
        address = ipaddress.ip_address(host)
        loopback = address.version == 4 and address.is_loopback  # 127.x sources need IPv4
    except ValueError:
        loopback = host == "localhost"
    return f"127.0.{2 + number // 250}.{1 + number % 250}" if loopback else None


def run_check(target: Target, item: Check, number: int = 0) -> CheckResult:
    session = Session(target, source_address_for(target, number))
    started = time.perf_counter()
    status: Status
    try:
        reason, status = item.run(session), "PASS"
    except CheckFailed as exc:
        reason, status = str(exc), "FAIL"
    except CheckSkipped as exc:
        reason, status = str(exc), "SKIPPED"
    except Exception as exc:  # a check that crashes is a failed check, with its cause
        reason, status = f"error: {type(exc).__name__}: {exc}", "FAIL"
    finally:
        session.close()
    return CheckResult(item.suite, item.id, item.checklist, status, reason,
                       round((time.perf_counter() - started) * 1000, 1),
                       tuple(session.evidence))
