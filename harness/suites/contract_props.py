"""Checklist §2/§17 by property: for each operation of the target's OpenAPI file, schemathesis
(used as a library) generates valid requests, valid requests about a real stream where the path
names one, and invalid requests, a bounded number each from a fixed seed, sends them with a
bearer token of the profile's kind, and holds every answer to the document: no 5xx, every
status documented, the content type and body as documented, invalid input refused. One check
line per operation; each broken rule is evidence with the shortest request that broke it, as a
curl command with the token left out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.errors import CheckFailed, CheckSkipped
from harness.suites.base import Check, Evidence, Session, Target, expander, expect
from harness.suites.contract_spec import Operation, load_spec, runnable_curl

CHECKLIST = "§2/§17 generated requests: documented statuses and schemas, no 5xx, bad input " \
            "refused"
OPERATION_BUDGET_S = 60.0  # generation stops sending after this, whatever the example count
REQUEST_TIMEOUT_S = 10.0
RESPONSE_RULES = [not_a_server_error, status_code_conformance, content_type_conformance,
                  response_headers_conformance, response_schema_conformance]


@dataclass
class Findings:
    """What one operation's generated requests showed."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # rule → (failure, curl command, status) of the shortest request that broke it
    broken: dict[str, tuple[Failure, str, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: int) -> None:
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def broke(self, failure: Failure, request: str, status: int) -> None:
        """Keep the shortest request that broke each rule: the smallest reproduction."""
        self.counts[failure.title] = self.counts.get(failure.title, 0) + 1
        kept = self.broken.get(failure.title)
        if kept is None or len(request) < len(kept[1]):
            self.broken[failure.title] = (failure, request, status)


@expander("contract")
def operation_checks(target: Target) -> list[Check]:
    """One check per operation of the target's OpenAPI file (none without a file: the
    spec-driven checks then say SKIPPED)."""
    try:
        spec = load_spec(target)
    except (CheckSkipped, CheckFailed):
        return []
    return [Check("contract", f"rest {operation.label}", CHECKLIST,
                  partial(probe_operation, operation))
            for operation in spec.operations() if not operation.upgrades()]


def probe_operation(operation: Operation, s: Session) -> str:
    """Send the generated requests of one operation and judge every answer."""
    options = s.target.contract
    spec = load_spec(s.target)
    schema = schemathesis.openapi.from_path(str(spec.file))
    api_operation = schema[operation.spec_path][operation.method]
    _, token = s.user()
    auth = {"Authorization": f"Bearer {token}"}
    findings, deadline = Findings(), time.monotonic() + OPERATION_BUDGET_S
    base_url = s.target.api_base.rstrip("/") + spec.base_path

    http = _http_session(s.source_address)

    def send(rules: list[Any], case: schemathesis.Case[Any]) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=base_url, session=http, headers=auth,
                             timeout=REQUEST_TIMEOUT_S)
        findings.add(response.status_code)
        try:
            case.validate_response(response, checks=rules, headers=auth)
        except FailureGroup as group:
            request = runnable_curl(case.as_curl_command(headers=auth, base_url=base_url))
            for failure in group.exceptions:
                findings.broke(failure, request, response.status_code)

    modes = [("valid", api_operation.as_strategy(), RESPONSE_RULES),
             ("invalid", api_operation.as_strategy(
                 generation_mode=schemathesis.GenerationMode.NEGATIVE),
              [*RESPONSE_RULES, negative_data_rejection])]
    pinned = _pinned_parameters(s, operation, token)
    if pinned:
        modes.insert(1, ("valid on a real stream",
                         api_operation.as_strategy(path_parameters=pinned), RESPONSE_RULES))
    with http:
        for _, strategy, rules in modes:
            _generate(strategy, options.examples, options.seed, partial(send, rules))
    return _verdict(s, operation, findings, [name for name, _, _ in modes])


class _FromAddress(HTTPAdapter):
    """Connections from one local address (the check's own loopback address, so a target's
    per-address rate limit counts this check apart: harness/suites/base.py)."""

    def __init__(self, source_address: str) -> None:
        self.source_address = source_address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_address, 0)
        super().init_poolmanager(*args, **kwargs)


def _http_session(source_address: str | None) -> requests.Session:
    """The session schemathesis sends through (it speaks `requests`)."""
    session = requests.Session()
    if source_address:
        session.mount("http://", _FromAddress(source_address))
    return session


def _pinned_parameters(s: Session, operation: Operation, token: str) -> dict[str, str]:
    """The operation's path parameters set to a stream just created (so its 200 answers are
    judged too); none when the path names no parameter."""
    names = [part[1:-1] for part in operation.path.split("/") if part.startswith("{")]
    if not names:
        return {}
    stream_id = s.stream_id(s.create_stream(token, "contract properties"))
    return {name: stream_id for name in names}


def _generate(strategy: Any, examples: int, seed: int,
              each: Callable[[schemathesis.Case[Any]], None]) -> None:
    """Run `each` on up to `examples` cases drawn from `strategy`, reproducibly from `seed`.
    No shrinking: `each` keeps the shortest failing request itself, within the budget."""
    @settings(max_examples=examples, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @hypothesis.seed(seed)
    @given(strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        each(case)

    with contextlib.suppress(Unsatisfiable):  # no invalid request exists for this operation
        run()


def _verdict(s: Session, operation: Operation, findings: Findings, modes: list[str]) -> str:
    seen = ", ".join(f"{status} x{count}" for status, count in sorted(findings.statuses.items()))
    s.evidence.append(Evidence(f"{findings.sent} generated requests to {operation.label} "
                               f"({', '.join(modes)}; seed {s.target.contract.seed})", None,
                               f"statuses: {seen}", 0.0))
    for title, (failure, request, status) in findings.broken.items():
        first_line = failure.message.strip().splitlines()[0] if failure.message.strip() else ""
        s.evidence.append(Evidence(request, status, f"{title}: {first_line}"[:200], 0.0))
    expect(findings.sent > 0, f"no request sent to {operation.label} (the time budget of "
                              f"{OPERATION_BUDGET_S:g} s ran out)")
    broken = [f"{title} ({_count(findings.counts[title], 'time')}, e.g. HTTP {status})"
              for title, (_, _, status) in findings.broken.items()]
    expect(not broken, f"{_count(len(broken), 'rule')} broken in "
                       f"{_count(findings.sent, 'request')}: " + "; ".join(broken))
    return (f"{_count(findings.sent, 'request')} ({', '.join(modes)}): every status "
            f"documented, bodies and content types as documented, no 5xx, invalid input refused")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
