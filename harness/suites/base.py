"""What every suite shares: the target a check talks to, the HTTP session that records every
request as evidence, the registry of checks, and the runner that turns each check into a
result (a check passes by returning, fails by raising CheckFailed, skips with CheckSkipped)."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from harness.auth import TokenMinter
from harness.broadcast import Publisher, ensure_clip
from harness.errors import CheckFailed, CheckSkipped
from harness.profile import Profile

Status = Literal["PASS", "FAIL", "SKIPPED"]
SUITES = ("verify", "api", "e2e", "security", "access")
EXCERPT_CHARS = 200


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
    """An HTTP client on the target that keeps every exchange as evidence."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.evidence: list[Evidence] = []
        self.client = httpx.Client(base_url=target.api_base, timeout=10.0)

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


def check(suite: str, check_id: str, checklist: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check; the function returns the PASS reason (what it saw)."""
    def register(function: CheckFunction) -> CheckFunction:
        REGISTRY[suite].append(Check(suite, check_id, checklist, function))
        return function
    return register


def run_check(target: Target, item: Check) -> CheckResult:
    session = Session(target)
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


PAGE_LIMIT = 100
ACTIVE_WITHIN_S = 10.0


def active_ids(s: Session, token: str) -> set[str]:
    """Ids of every active stream the listing returns (all pages)."""
    profile, ids, offset = s.target.profile, set(), 0
    while True:
        query = f"{profile.listing.limit_param}={PAGE_LIMIT}&{profile.listing.offset_param}="
        query += str(offset if profile.listing.paging == "offset" else offset // PAGE_LIMIT + 1)
        response = s.request("GET", f"{profile.path('list_active')}?{query}", token=token)
        expect(response.status_code == 200, f"listing active streams: HTTP "
                                            f"{response.status_code}")
        page = profile.streams_of(response.json())
        ids |= {str(profile.stream_field(stream, "id")) for stream in page}
        offset += PAGE_LIMIT
        if len(page) < PAGE_LIMIT:
            return ids


@contextmanager
def publishing(s: Session, stream_id: str) -> Iterator[None]:
    """An ffmpeg publisher on the stream's key until the block ends; the block starts once
    the API reports the stream active."""
    _, admin = s.user(admin=True)
    profile = s.target.profile
    body = s.request("GET", profile.path("get", stream_id), token=admin).json()
    key = str(profile.stream_field(body, "key"))
    with tempfile.TemporaryDirectory() as logs:
        publisher = Publisher(s.target.rtmp_url, key, ensure_clip(), Path(logs) / "ffmpeg.log")
        started = time.perf_counter()
        publisher.start()
        try:
            deadline = time.monotonic() + ACTIVE_WITHIN_S
            while profile.status_of(s.request("GET", profile.path("get", stream_id),
                                              token=admin).json()) != "active":
                expect(publisher.running, "ffmpeg exited: " + publisher.stderr_tail(2))
                expect(time.monotonic() < deadline, f"not active {ACTIVE_WITHIN_S:g} s after "
                                                    "the publish started")
                time.sleep(0.2)
            s.note("RTMP publish (key not recorded) until active", None, "active", started)
            yield
        finally:
            publisher.stop()
