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


def test_demo_script_runs_the_smoke_and_cleans_up() -> None:
    run_dir = new_run_dir("demo")
    try:
        result = subprocess.run(["bash", "scripts/demo"], cwd=ROOT, capture_output=True,
                                text=True, timeout=180,
                                env={"NOVA_DEMO_DIR": str(run_dir), "PATH": "/usr/bin:/bin",
                                     "HOME": str(Path.home())})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "stack ready in" in result.stdout
        assert "smoke: PASS" in result.stdout
        assert "5/5 got connection_established" in result.stdout
        assert "stack stopped" in result.stdout
        state = read_state(run_dir)
        assert state.status == "stopped"
        for role in state.roles.values():
            assert role.pid is not None
            assert not psutil.pid_exists(role.pid) or \
                psutil.Process(role.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_smoke_against_no_stack_exits_4() -> None:
    run_dir = new_run_dir("nosmoke")
    result = subprocess.run([str(ROOT / ".venv/bin/nova-harness"), "smoke", "--run-dir",
                             str(run_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and "stack up" in result.stderr
    shutil.rmtree(run_dir, ignore_errors=True)
