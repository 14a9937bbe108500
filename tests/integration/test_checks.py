"""`nova-harness check`: every suite passes against the reference stack, and each suite has
checks that fail against a deliberately broken target (an extra service instance on the same
stack started with a NOVA_BROKEN_* flag), a rate-limited instance, and TLS endpoints (nginx with
certificates this test makes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config.profile import load_profile
from harness.suites.base import REGISTRY, CheckResult, Target, run_check
from harness.suites.runner import run_suites
from stack.roles import free_port, program
from tests.support import RunningStack, extra_instance, wait_for

CLI = [sys.executable, "-m", "harness.cli"]
# The shared stack has no analytics roles: the §6 lines are judged in test_analytics.py.
NO_ANALYTICS = {"verify/kafka-broker", "verify/clickhouse-select"}
# Without limits the target cannot show (the local stack runs unlimited) and without https.
SKIPPED_ON_THE_STACK = {"api/error-rate-limit", "security/tls", "security/rate-limit-user",
                        "security/rate-limit-ip-bypass", "verify/grafana-dashboard",
                        *NO_ANALYTICS}
# A stack without the Prometheus role (and no Grafana anywhere here).
NO_PROMETHEUS = {"verify/prometheus-targets", "verify/prometheus-nova-metrics",
                 "verify/alert-rules-loaded", "verify/grafana-dashboard"}


def test_check_all_passes_on_the_reference_stack(stack: RunningStack, tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "check", "--suite", "all", "--run-dir", str(stack.run_dir),
                             "--results", str(tmp_path), "--examples", "6"],
                            capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = next(tmp_path.iterdir())
    checks = json.loads((folder / "checks.json").read_text())
    statuses = {f"{c['suite']}/{c['id']}": c["status"] for c in checks}
    assert {c["suite"] for c in checks} == {"verify", "api", "e2e", "access", "security",
                                            "contract"}
    assert {k for k, v in statuses.items() if v == "SKIPPED"} == SKIPPED_ON_THE_STACK
    assert {v for k, v in statuses.items() if k not in SKIPPED_ON_THE_STACK} == {"PASS"}
    assert len(checks) >= 35 and all(c["evidence"] for c in checks if c["status"] == "PASS")
    junit = (folder / "junit.xml").read_text()
    assert 'failures="0"' in junit and "report.html" in result.stdout
    for name in ("verdict.json", "summary.md", "report.html", "manifest.json"):
        text = (folder / name).read_text()
        assert "eyJ" not in text and "sk_" not in text, name  # no token, no stream key


def target_of(stack: RunningStack, url: str) -> Target:
    endpoints = stack.state.endpoints
    return Target(url, "ws" + url.removeprefix("http"), endpoints["rtmp_url"],
                  endpoints["hls_base"], f"{url}/metrics", load_profile("nova-doc"),
                  stack.minter, endpoints["database_url"], endpoints["redis_url"])


def results_by_id(target: Target, *suites: str) -> dict[str, CheckResult]:
    return {r.id: r for r in run_suites(target, suites)}


def only(target: Target, suite: str, *ids: str) -> dict[str, CheckResult]:
    return {c.id: run_check(target, c) for c in REGISTRY[suite] if c.id in ids}


def test_auth_off_on_one_route_fails_verify_and_security(stack: RunningStack) -> None:
    with extra_instance(stack, "broken-auth", NOVA_BROKEN_NO_AUTH_ROUTES="list_active") as url:
        verify = results_by_id(target_of(stack, url), "verify")
        security = only(target_of(stack, url), "security", "auth-sweep", "bad-tokens")
    assert verify["tokens"].status == "FAIL" and "missing" in verify["tokens"].reason
    # No Prometheus and no analytics path given here.
    unjudged = {i.removeprefix("verify/") for i in NO_PROMETHEUS | NO_ANALYTICS}
    assert {r.status for i, r in verify.items() if i not in unjudged | {"tokens"}} == {"PASS"}
    assert {verify[i].status for i in unjudged} == {"SKIPPED"}
    assert security["auth-sweep"].status == "FAIL"
    assert "GET /api/v1/streams/active → 200" in security["auth-sweep"].reason
    assert security["bad-tokens"].status == "FAIL"


def test_500_for_unknown_streams_fails_the_api_suite(stack: RunningStack) -> None:
    with extra_instance(stack, "broken-404", NOVA_BROKEN_UNKNOWN_STREAM_500="1") as url:
        api = only(target_of(stack, url), "api", "error-unknown-stream", "create-fields")
        security = only(target_of(stack, url), "security", "injection")
    assert api["error-unknown-stream"].status == "FAIL"
    assert "HTTP 500, expected 404" in api["error-unknown-stream"].reason
    assert api["create-fields"].status == "PASS"
    assert security["injection"].status == "FAIL"  # a 5xx for a hostile path


def test_skipped_owner_check_fails_the_access_suite(stack: RunningStack) -> None:
    with extra_instance(stack, "broken-owner", NOVA_BROKEN_SKIP_OWNER_CHECK="1") as url:
        access = results_by_id(target_of(stack, url), "access")
    failed = {i for i, r in access.items() if r.status == "FAIL"}
    assert failed == {"others-cannot-end", "others-cannot-modify"}, access


def test_a_wrong_viewer_count_fails_the_e2e_suite(stack: RunningStack) -> None:
    with extra_instance(stack, "broken-count", NOVA_BROKEN_VIEWER_COUNT_OFFSET="1") as url:
        e2e = results_by_id(target_of(stack, url), "e2e")
    assert e2e["complete-session"].status == "FAIL"
    assert "does not count the 3 viewers" in e2e["complete-session"].reason
    assert e2e["concurrent-isolated"].status == "FAIL"


def test_rate_limits_hold_and_a_trusted_forwarded_for_is_caught(stack: RunningStack) -> None:
    limits = {"NOVA_RATE_LIMIT_IP": "150", "NOVA_RATE_LIMIT_USER": "40",
              "NOVA_RATE_LIMIT_WINDOW_S": "60"}
    with extra_instance(stack, "limited", **limits) as url:
        api = only(target_of(stack, url), "api", "error-rate-limit")
        security = only(target_of(stack, url), "security", "rate-limit-user",
                        "rate-limit-ip-bypass")
    assert api["error-rate-limit"].status == "PASS", api
    assert "Retry-After" in api["error-rate-limit"].reason
    assert security["rate-limit-user"].status == "PASS", security
    assert security["rate-limit-ip-bypass"].status == "PASS", security
    with extra_instance(stack, "trusting", NOVA_BROKEN_TRUST_FORWARDED_FOR="1",
                        **limits) as url:
        bypass = only(target_of(stack, url), "security", "rate-limit-ip-bypass")
    assert bypass["rate-limit-ip-bypass"].status == "FAIL", bypass
    assert "bypasses the limit" in bypass["rate-limit-ip-bypass"].reason


def _certificates(folder: Path, days: int) -> None:
    """A CA and a server certificate for IP 127.0.0.1 valid for `days`."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "30", "-subj", "/CN=nova test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", str(days), "-extfile", "san.cnf")


@contextmanager
def tls_endpoint(folder: Path, protocols: str, ciphers: str, days: int) -> Iterator[str]:
    folder.mkdir()
    (folder / "logs").mkdir()
    _certificates(folder, days)
    port = free_port()
    (folder / "nginx.conf").write_text(f"""daemon off;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {folder}/server.pem;
    ssl_certificate_key {folder}/server.key;
    ssl_protocols {protocols};
    ssl_ciphers {ciphers};
    location / {{ return 200 "ok"; }}
  }}
}}
""")
    proc = subprocess.Popen([program("nginx"), "-p", str(folder), "-c",
                             str(folder / "nginx.conf")], start_new_session=True)
    try:
        assert wait_for(lambda: (folder / "nginx.pid").exists(), 10.0)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()  # the master we started ends its own workers
        proc.wait(timeout=10)


def test_tls_check_against_local_endpoints(stack: RunningStack, tmp_path: Path) -> None:
    assert shutil.which("openssl")
    good = tls_endpoint(tmp_path / "good", "TLSv1.2 TLSv1.3", "HIGH:!aNULL:!MD5", 365)
    with good as url:
        target = Target(url, "", "", "", "", load_profile("nova-doc"), stack.minter,
                        ca_file=str(tmp_path / "good" / "ca.pem"))
        passed = only(target, "security", "tls")["tls"]
        untrusted = only(Target(**{**target.__dict__, "ca_file": None}), "security", "tls")
    assert passed.status == "PASS", passed
    assert "TLS 1.0 refused" in passed.reason and "TLS 1.1 refused" in passed.reason
    assert untrusted["tls"].status == "FAIL" and "certificate not valid" in untrusted["tls"].reason
    with tls_endpoint(tmp_path / "bad", "TLSv1 TLSv1.1 TLSv1.2", "DEFAULT:@SECLEVEL=0",
                      5) as url:
        bad = only(Target(url, "", "", "", "", load_profile("nova-doc"), stack.minter,
                          ca_file=str(tmp_path / "bad" / "ca.pem")), "security", "tls")["tls"]
    assert bad.status == "FAIL"
    for finding in ("accepts TLS 1.0", "accepts TLS 1.1", "expires in 4 days"):
        assert finding in bad.reason, bad.reason


def test_the_suites_pass_on_a_stack_started_as_the_hint_says(tmp_path: Path) -> None:
    """With the low limits the SKIPPED rate-limit checks' hint names, they are judged and
    PASS, and the checks after them are not poisoned by the limits they exhausted."""
    from harness.suites.base import LOW_LIMITS_HINT
    from tests.support import running_stack

    assert "NOVA_RATE_LIMIT_USER=100" in LOW_LIMITS_HINT
    limits = {"NOVA_RATE_LIMIT_USER": "100", "NOVA_RATE_LIMIT_IP": "150"}
    with running_stack("checks-limited", service_env=limits) as limited:
        # The suites with rate-limit checks (api's is last there, security's after api's);
        # the others are the run above's (and the contract suite's own tests').
        result = subprocess.run([*CLI, "check", "--suite", "api,security",
                                 "--run-dir", str(limited.run_dir), "--results", str(tmp_path)],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads((next(tmp_path.iterdir()) / "checks.json").read_text())
    statuses = {f"{c['suite']}/{c['id']}": c["status"] for c in checks}
    assert {k for k, v in statuses.items() if v != "PASS"} == {"security/tls"}, statuses
    assert {"api/error-rate-limit", "security/rate-limit-user",
            "security/rate-limit-ip-bypass"} <= set(statuses)
