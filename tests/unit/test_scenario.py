"""Scenario validation: shipped files validate, every problem is reported with its path,
CLI overrides apply before validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.config.base import parse_duration_s
from harness.config.scenario import load_scenario
from records.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text,seconds", [(90, 90), ("90s", 90), ("2m", 120), ("1h30m", 5400),
                                          ("1.5m", 90), ("45", 45)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "2x", "", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(text)


@pytest.mark.parametrize("name", ["smoke", "viewers-250", "viewers-100", "concurrent-3x20"])
def test_shipped_scenarios_validate(name: str) -> None:
    scenario, profile = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    assert profile.name == "nova-doc" and scenario.target.stack == "local"


def test_viewers_250_is_the_checklist_shape() -> None:
    scenario, _ = load_scenario(ROOT / "scenarios/viewers-250.yaml")
    assert (scenario.streams.count, scenario.viewers.per_stream) == (5, 50)
    assert scenario.planned_viewers == 250


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_every_problem_at_once_with_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nload: {ramp: soon}\nviewers: {per_stream: -1}\n"
                           "api_clients: {mix: {dance: 1}}\nprofile: nope\nextra: 1\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    text = "\n".join(failure.value.problems)
    for where in ("load.ramp", "viewers.per_stream", "api_clients", "extra", "profile 'nope'"):
        assert where in text, where
    assert len(failure.value.problems) >= 5


def test_semantic_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nload: {ramp: 5, hold: 10, ramp_down: 5, warmup: 60}\n"
                           "viewers: {per_stream: 0}\napi_clients: {rate_per_s: 0}\n"
                           "thresholds: missing.yaml\nchaos: [{experiment: e.json, at: 1h}]\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    text = "\n".join(failure.value.problems)
    for fragment in ("load.warmup", "nothing to run", "thresholds", "chaos[0].at"):
        assert fragment in text


def test_remote_target_needs_allow_remote(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT", "a-secret-for-the-test")
    path = write(tmp_path, "name: x\ntarget: {stack: null, base_url: 'https://staging.example'}\n"
                           "auth: {mode: secret_env, secret_env: JWT}\n")
    with pytest.raises(InputError, match="allow_remote"):
        load_scenario(path)
    path = write(tmp_path, "name: x\ntarget: {stack: null, base_url: 'https://staging.example', "
                           "allow_remote: true}\nauth: {mode: secret_env, secret_env: JWT}\n")
    scenario, _ = load_scenario(path)
    assert scenario.target.base_url == "https://staging.example"


def test_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X", "a-secret-for-the-test")
    path = ROOT / "scenarios/viewers-250.yaml"
    scenario, _ = load_scenario(path, {"duration": "2m", "viewers.per_stream": 10,
                                       "streams.count": 2})
    assert scenario.load.total_s == 120 and scenario.planned_viewers == 20
    scenario, _ = load_scenario(path, {"target.base_url": "http://127.0.0.1:9",
                                       "auth.mode": "secret_env", "auth.secret_env": "X"})
    assert scenario.target.stack is None
    with pytest.raises(InputError, match="shorter than ramp"):
        load_scenario(path, {"duration": "10s"})


def test_validate_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "scenarios/smoke.yaml")]) == 0
    bad = write(tmp_path, "name: x\nload: {ramp: soon, hold: never}\n")
    assert main(["validate", str(bad), str(ROOT / "scenarios/smoke.yaml")]) == 2
    err = capsys.readouterr().err
    assert "load.ramp" in err and "load.hold" in err and "hint:" in err


def test_monitor_settings_report_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nmonitors:\n"
                           "  processes: [{role: api}, {role: db, name: pg, pid_file: /p},\n"
                           "              {role: web, cmdline: '(('}, {role: Bad Role, name: x}]\n"
                           "  prometheus: {url: 'ftp://x', queries: [{role: api, field: cpu,"
                           " query: up}]}\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    text = "\n".join(failure.value.problems)
    for where in ("monitors.processes[0]", "monitors.processes[1]", "monitors.processes[3].role",
                  "monitors.processes[2]: Value error, cmdline is not a regular expression",
                  "monitors.prometheus.queries[0].field", "monitors.prometheus.url: Value error"):
        assert where in text, where
    assert "exactly one of name, cmdline, pid_file" in text


def test_service_env_takes_numbers_as_the_service_reads_them(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nstack:\n  service_env: {NOVA_WS_PING_INTERVAL_S: 0.25,"
                           " NOVA_VIEWER_COALESCE_MS: 40, NOVA_MODE: fast}\n")
    scenario, _ = load_scenario(path)
    assert scenario.stack.service_env == {"NOVA_WS_PING_INTERVAL_S": "0.25",
                                          "NOVA_VIEWER_COALESCE_MS": "40", "NOVA_MODE": "fast"}


def test_service_env_reports_names_and_values_it_cannot_pass(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nstack:\n  service_env: {PATH: /tmp, nova_lower: 1}\n"
                           "viewers: {per_stream: -1}\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    text = "\n".join(failure.value.problems)
    assert "stack.service_env" in text and "PATH, nova_lower" in text
    assert "viewers.per_stream" in text
    path = write(tmp_path, "name: x\nstack:\n  service_env: {NOVA_FLAG: true}\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    assert "stack.service_env.NOVA_FLAG" in "\n".join(failure.value.problems)
    path = write(tmp_path, "name: x\nauth: {mode: token_file, token_file: t.txt}\n"
                           "target: {stack: null, base_url: 'http://127.0.0.1:8080'}\n"
                           "stack:\n  service_env: {NOVA_FLAG: '1'}\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    assert any("stack.service_env: sets the reference service" in p
               for p in failure.value.problems), failure.value.problems


def test_a_reused_stack_started_with_other_settings_is_named_with_secrets_hidden(
        tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nstack:\n  service_env: {NOVA_WS_PING_INTERVAL_S: 0.25,"
                           " NOVA_JWT_SECRET: mine, NOVA_MODE: fast}\n")
    scenario, _ = load_scenario(path)
    problems = scenario.stack.service_env_problems(
        {"NOVA_WS_PING_INTERVAL_S": "30", "NOVA_JWT_SECRET": "theirs", "NOVA_MODE": "fast"})
    assert problems == [
        "stack.service_env.NOVA_JWT_SECRET: the stack already running has ***, not ***",
        "stack.service_env.NOVA_WS_PING_INTERVAL_S: the stack already running has '30', "
        "not '0.25'"]
    assert scenario.stack.service_env_problems({}) == [
        "stack.service_env.NOVA_JWT_SECRET: the stack already running has it unset, not ***",
        "stack.service_env.NOVA_MODE: the stack already running has it unset, not 'fast'",
        "stack.service_env.NOVA_WS_PING_INTERVAL_S: the stack already running has it unset, "
        "not '0.25'"]


def test_problems_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nload:\n  ramp: 5s\n  hold: banana\n"
                           "viewers: {per_stream: 2, bogus: 1}\n")
    with pytest.raises(InputError) as failure:
        load_scenario(path)
    text = "\n".join(failure.value.problems)
    assert ":4: load.hold:" in text and ":5: viewers.bogus:" in text


def test_an_unset_secret_variable_fails_validate_naming_the_scenario_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NOVA_TEST_UNSET_SECRET", raising=False)
    path = write(tmp_path, "name: x\ntarget: {stack: null, base_url: 'http://127.0.0.1:9', "
                           "allow_remote: true}\n"
                           "auth: {mode: secret_env, secret_env: NOVA_TEST_UNSET_SECRET}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "auth.secret_env: the environment variable NOVA_TEST_UNSET_SECRET is unset" in err
    assert "--secret-env" not in err


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process: `run` imports Locust, which monkey-patches the process."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_a_shipped_scenario_with_target_says_which_auth_to_use() -> None:
    result = _cli("run", str(ROOT / "scenarios/smoke.yaml"), "--target", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "auth.mode to secret_env, key_file, token_file or login" in result.stderr


def test_an_unreachable_target_leaves_no_results(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntarget: {stack: null, base_url: 'http://127.0.0.1:9', "
                           "allow_remote: true}\n"
                           "auth: {mode: secret_env, secret_env: NOVA_TEST_SECRET}\n")
    result = _cli("run", str(path), "--results", str(tmp_path / "results"), "--quiet",
                  env={"NOVA_TEST_SECRET": "a-secret-for-the-test"})
    assert result.returncode == 4, result.stderr
    assert "target unreachable: GET http://127.0.0.1:9/health" in result.stderr
    assert "hint:" in result.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_validate_speaks_in_singular_and_plural(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "name: x\nstreams: {count: 1}\nviewers: {per_stream: 1}\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(1 viewer, 1 stream," in out
