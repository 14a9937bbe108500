"""The launcher: up/down leave nothing behind, up twice reuses, a taken port fails fast with one
line, the supervisor restarts a dead instance, the CLI status/token commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import httpx
import psutil
import pytest

from stack import local
from stack.errors import StackStartError
from stack.roles import StackOptions, port_is_free
from stack.state import read_state
from tests.support import new_run_dir, running_stack, wait_for

CLI = [sys.executable, "-m", "harness.cli"]


def test_up_down_leaves_no_process_and_no_port() -> None:
    run_dir = new_run_dir("updown")
    try:
        state, reused = local.up(StackOptions(run_dir=run_dir, standby=True))
        assert not reused and state.status == "ready"
        pids = [r.pid for r in state.roles.values()] + [state.supervisor_pid]
        ports = [p for r in state.roles.values() for p in [r.port, *r.extra_ports.values()]]
        nginx_pid = state.roles["nginx"].pid
        workers = [c.pid for c in psutil.Process(nginx_pid).children()]
        assert workers, "nginx has no worker"
        again, reused = local.up(StackOptions(run_dir=run_dir))
        assert reused and again.supervisor_pid == state.supervisor_pid
        assert local.down(run_dir) == []  # nothing had to be killed directly
        for pid in [*pids, *workers]:
            assert pid is not None
            assert not psutil.pid_exists(pid) or \
                psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
        assert all(port_is_free(p) for p in ports if p)
        assert read_state(run_dir).status == "stopped"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_taken_port_fails_fast_with_one_line() -> None:
    run_dir = new_run_dir("taken")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = subprocess.run([*CLI, "stack", "up", "--run-dir", str(run_dir),
                                 "--rtmp-port", str(port)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 4
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"rtmp: port {port}" in lines[0], result.stderr
        assert not (run_dir / "state.json").exists()  # nothing half-started
    shutil.rmtree(run_dir, ignore_errors=True)


def test_part_that_dies_at_start_names_itself_and_its_log() -> None:
    run_dir = new_run_dir("broken")
    try:
        options = StackOptions(run_dir=run_dir,
                               service_env={"NOVA_VIEWER_COALESCE_MS": "500"})  # invalid
        with pytest.raises(StackStartError) as failure:
            local.up(options)
        message = str(failure.value)
        assert message.startswith("api-1 exited with code 2") and "api-1.log" in message
        state = read_state(run_dir)
        assert state.status == "failed"
        for role in state.roles.values():  # what had started was stopped again
            assert role.pid is None or not psutil.pid_exists(role.pid) or \
                psutil.Process(role.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_supervisor_restarts_a_dead_instance_and_cli_reports() -> None:
    with running_stack("restart") as stack:
        old = stack.state.roles["api-1"].pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        assert wait_for(lambda: stack.refresh().roles["api-1"].restarts == 1
                        and stack.state.roles["api-1"].state == "running", 20.0)
        assert stack.state.roles["api-1"].pid != old
        assert wait_for(lambda: httpx.get(f"{stack.api}/health").status_code == 200, 20.0)

        status = subprocess.run([*CLI, "stack", "status", "--json", "--run-dir",
                                 str(stack.run_dir)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0
        report = json.loads(status.stdout)
        assert set(report["endpoints"]) >= {"api_base", "rtmp_url", "hls_base", "metrics_url"}
        assert report["roles"]["api-1"]["restarts"] == 1
        assert all(r["healthy"] for r in report["roles"].values()), report["roles"]

        token = subprocess.run([*CLI, "token", "--run-dir", str(stack.run_dir), "--admin"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        response = httpx.get(f"{stack.api}/api/v1/streams/active",
                             headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        # The secret never lands in the state file or the logs.
        secret = (stack.run_dir / "secrets" / "jwt_secret").read_text().strip()
        assert secret not in (stack.run_dir / "state.json").read_text()
        for log in (stack.run_dir / "logs").iterdir():
            assert secret not in log.read_text(errors="replace"), log


def test_status_of_a_stopped_stack_exits_4() -> None:
    run_dir = new_run_dir("nostack")
    result = subprocess.run([*CLI, "stack", "status", "--run-dir", str(run_dir)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 4 and "stack up" in result.stderr
    shutil.rmtree(run_dir, ignore_errors=True)
