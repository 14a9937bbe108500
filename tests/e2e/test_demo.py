"""What `make demo` does, through the real CLI: stack up → smoke → stack down."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from stack.state import read_state
from tests.support import new_run_dir

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_demo_script_runs_the_250_viewer_scenario(tmp_path: Path) -> None:
    run_dir = new_run_dir("demo")
    try:
        result = subprocess.run(["bash", "scripts/demo"], cwd=ROOT, capture_output=True,
                                text=True, timeout=300,
                                env={"NOVA_DEMO_DIR": str(run_dir), "PATH": "/usr/bin:/bin",
                                     "HOME": str(Path.home()), "NOVA_DEMO_DURATION": "40s",
                                     "NOVA_DEMO_RESULTS": str(tmp_path)})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "run completed: 250/250 viewers connected" in result.stdout
        assert "generator saturated: False" in result.stdout
        assert "verdict: PASS" in result.stdout and "report.html" in result.stdout
        state = read_state(run_dir)
        assert state.status == "stopped"
        for role in state.roles.values():
            assert role.pid is not None
            assert not psutil.pid_exists(role.pid) or \
                psutil.Process(role.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_smoke_command_against_its_own_stack() -> None:
    run_dir = new_run_dir("smoke")
    cli = str(ROOT / ".venv/bin/nova-harness")
    try:
        up = subprocess.run([cli, "stack", "up", "--run-dir", str(run_dir)],
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        smoke = subprocess.run([cli, "smoke", "--run-dir", str(run_dir), "--viewers", "5"],
                               capture_output=True, text=True, timeout=120)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke: PASS" in smoke.stdout and "5/5 got connection_established" in smoke.stdout
    finally:
        subprocess.run([cli, "stack", "down", "--run-dir", str(run_dir)], capture_output=True,
                       timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_smoke_against_no_stack_exits_4() -> None:
    run_dir = new_run_dir("nosmoke")
    result = subprocess.run([str(ROOT / ".venv/bin/nova-harness"), "smoke", "--run-dir",
                             str(run_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and "stack up" in result.stderr
    shutil.rmtree(run_dir, ignore_errors=True)
