"""deploy/prometheus/nova-streaming-alerts.yml with Debian's promtool: the rules are valid, and
their unit tests (each alert firing past its limit, quiet within it) pass and cover every
alert."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "scripts/setup installs prometheus (promtool comes with it)"
    return subprocess.run([binary, *args], cwd=RULES, capture_output=True, text=True,
                          timeout=60)


def test_the_rules_are_valid_and_their_tests_pass() -> None:
    checked = promtool("check", "rules", "nova-streaming-alerts.yml")
    assert checked.returncode == 0 and "SUCCESS: 8 rules found" in checked.stdout, \
        checked.stdout + checked.stderr
    tested = promtool("test", "rules", "nova-streaming-alerts.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_has_a_case_where_it_fires() -> None:
    rules = yaml.safe_load((RULES / "nova-streaming-alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES / "nova-streaming-alerts.test.yml").read_text())
    firing = {case["alertname"] for test in tests["tests"]
              for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert firing == alerts
