"""The check runner without a target: suite selection errors, how a check's outcome becomes
PASS / FAIL / SKIPPED, and the JUnit and summary files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict

import pytest

from analysis.check_report import check_report
from analysis.report import junit_xml, summary_md
from harness.auth.minting import TokenMinter
from harness.config.profile import load_profile
from harness.errors import CheckSkipped
from harness.suites.base import Check, CheckResult, Evidence, Session, Target, expect, run_check
from harness.suites.runner import BUILT_SUITES, selected
from records.documents import CheckList
from records.errors import InputError

TARGET = Target("http://127.0.0.1:9", "ws://127.0.0.1:9", "rtmp://127.0.0.1:9/live",
                "http://127.0.0.1:9", "http://127.0.0.1:9/metrics", load_profile("nova-doc"),
                TokenMinter("HS256", "x" * 32))


def test_every_suite_is_built_and_unknown_ones_are_input_errors() -> None:
    assert BUILT_SUITES == ("verify", "api", "e2e", "access", "security", "contract")
    assert selected(["all"]) == list(BUILT_SUITES)
    assert selected(["security", "verify"]) == ["verify", "security"]
    with pytest.raises(InputError) as failure:
        selected(["verify", "perf", "chaos"])
    assert failure.value.problems == ["--suite chaos, perf: no such suite here"]


def _passes(s: Session) -> str:
    return "saw it"


def _fails(s: Session) -> str:
    expect(False, "the target said no")
    return ""


def _skips(s: Session) -> str:
    raise CheckSkipped("no DSN")


def _crashes(s: Session) -> str:
    return str(1 / 0)


def _unreachable(s: Session) -> str:
    s.request("GET", "/health")
    return ""


def test_outcomes_become_statuses_with_their_reasons() -> None:
    outcomes = {name: run_check(TARGET, Check("verify", name, "§0", fn)) for name, fn in (
        ("pass", _passes), ("fail", _fails), ("skip", _skips), ("crash", _crashes),
        ("down", _unreachable))}
    assert {n: (r.status, r.reason) for n, r in outcomes.items() if n != "down"} == {
        "pass": ("PASS", "saw it"), "fail": ("FAIL", "the target said no"),
        "skip": ("SKIPPED", "no DSN"),
        "crash": ("FAIL", "error: ZeroDivisionError: division by zero")}
    down = outcomes["down"]
    assert down.status == "FAIL" and down.reason.startswith("GET /health: ConnectError")
    assert down.evidence[0].request == "GET /health" and down.evidence[0].status is None


def test_junit_and_summary_count_each_suite() -> None:
    results = [CheckResult("verify", "a", "§7 a", "PASS", "ok", 1.0),
               CheckResult("verify", "b", "§7 b", "FAIL", "broken", 2.0,
                           (Evidence("GET /x", 500, "oops", 1.0),)),
               CheckResult("access", "c", "§18 c", "SKIPPED", "no admin", 0.5)]
    report = check_report(CheckList.model_validate([asdict(r) for r in results]).root, "run")
    root = ET.fromstring(junit_xml(report))
    suites = {s.get("name"): s for s in root}
    assert suites["nova-check-verify"].get("failures") == "1"
    assert suites["nova-check-access"].get("skipped") == "1"
    failure = root.find(".//testcase[@name='b']/failure")
    assert failure is not None and failure.get("message") == "broken"
    text = summary_md(report)
    assert "**FAIL**" in text and "| ❌ FAIL | verify | b | §7 b | broken |" in text
    assert root.get("tests") == "3" and root.get("failures") == "1"


def test_each_check_on_a_loopback_target_has_its_own_source_address() -> None:
    from dataclasses import replace

    from harness.suites.base import source_address_for

    local = TARGET
    assert source_address_for(local, 0) == "127.0.2.1"
    assert source_address_for(local, 251) == "127.0.3.2"
    remote = replace(local, api_base="http://staging.example:8080")
    assert source_address_for(remote, 0) is None
    assert source_address_for(replace(local, api_base="http://[::1]:8080"), 0) is None
