"""`nova-harness check --suite contract`: it passes against the reference stack (the suite
`all` run in test_checks.py holds that too), fails exactly the lines a non-conforming target
breaks, and reads the profile (the served variant's profile against the reference fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.suites.base import CheckResult, ContractOptions
from harness.suites.runner import run_suites
from tests.integration.nonconforming import nonconforming_proxy
from tests.integration.test_checks import target_of
from tests.support import RunningStack

CLI = [sys.executable, "-m", "harness.cli"]
# What each defect of the proxy breaks (tests/integration/nonconforming.py).
BROKEN_BY_THE_PROXY = {
    "boundaries": "offset",  # 1: an offset beyond int64 → 500
    "ws late-joiner": "no stream_started",  # 2
    "rest POST /api/v1/streams": "Response violates schema",  # 4: decimal durations
    "rest GET /api/v1/streams/{stream_id}": "Response violates schema",  # 4
    "rest POST /api/v1/streams/{stream_id}/quality": "Response violates schema",  # 4
    "ws stream-info": "duration_seconds",  # 4
    "ws stream-ended": "duration_seconds",  # 4
    "ws clean-close": "before the client's close",  # 8
    "undeclared-methods": "405 without an Allow header",  # 9
}
# Lists active streams: breaks 1 when an invalid offset is drawn, and 4 when another test's
# stream happens to be live; its failures may only be those.
LISTING = "rest GET /api/v1/streams/active"


@pytest.fixture(scope="module")
def proxy_results(stack: RunningStack) -> dict[str, CheckResult]:
    """The suite's results against the non-conforming proxy (one run for the module)."""
    with nonconforming_proxy(stack.api) as url:
        target = replace(target_of(stack, url), contract=ContractOptions(examples=6))
        return {r.id: r for r in run_suites(target, ["contract"])}


def test_the_suite_fails_exactly_what_a_nonconforming_target_breaks(
        proxy_results: dict[str, CheckResult]) -> None:
    results = proxy_results
    failed = {name for name, result in results.items() if result.status == "FAIL"}
    assert failed - {LISTING} == set(BROKEN_BY_THE_PROXY), \
        {name: results[name].reason for name in failed}
    for name, words in BROKEN_BY_THE_PROXY.items():
        assert words in results[name].reason, (name, results[name].reason)
    listing = results[LISTING]
    if listing.status == "FAIL":
        rules = {e.excerpt.split(":")[0] for e in listing.evidence if e.status is not None}
        assert rules <= {"Server error", "Response violates schema"}, listing.reason
    assert {r.status for r in results.values()} <= {"PASS", "FAIL"}  # nothing skipped


def test_a_failure_carries_a_curl_command_without_the_token(
        proxy_results: dict[str, CheckResult]) -> None:
    result = proxy_results["rest GET /api/v1/streams/{stream_id}"]
    repro = [e.request for e in result.evidence if e.request.startswith("curl")]
    assert repro and all('"Authorization: Bearer $TOKEN"' in line for line in repro), repro
    assert "eyJ" not in json.dumps([e.__dict__ for e in result.evidence])


def test_the_served_profile_against_the_reference_fails_with_readable_evidence(
        stack: RunningStack, tmp_path: Path) -> None:
    """The wrong profile for the target: the suite reads it and says where they differ."""
    result = subprocess.run([*CLI, "check", "--suite", "contract", "--profile", "nova-served",
                             "--run-dir", str(stack.run_dir), "--results", str(tmp_path),
                             "--examples", "5"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    checks = {c["id"]: c for c in
              json.loads((next(tmp_path.iterdir()) / "checks.json").read_text())}
    shapes = checks["profile-shapes"]
    assert shapes["status"] == "FAIL"
    for difference in ("stream_id", "current_viewers", "'scheduled' is none of", "→ HTTP 404, "
                       "the profile says 500", "GET /api/v1/health → HTTP 404"):
        assert difference in shapes["reason"], shapes["reason"]
    assert checks["spec-endpoints"]["status"] == "FAIL"
    assert "GET /api/v1/streams → HTTP 405" in checks["spec-endpoints"]["reason"]
    assert checks["ws connection-established"]["status"] == "SKIPPED"
