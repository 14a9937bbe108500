"""The local reference stack: `up` starts a detached supervisor (stack/supervisor.py) and waits
until every part is healthy; `down` stops what it started, by pid; `status` and `logs` read the
state file. `python -m stack.local supervise` is the supervisor's own entry point."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from stack import roles
from stack.address import LOOPBACK, cannot_listen, listen_host, use_listen_host
from stack.analytics import clickhouse
from stack.errors import StackNotRunning, StackStartError
from stack.jwtkeys import ensure_keys
from stack.roles import StackOptions
from stack.state import (
    StackState,
    is_same_process,
    read_state,
    state_path,
    supervisor_alive,
)

UP_TIMEOUT_S = 90.0


def default_run_dir() -> Path:
    """Outside the repository and readable by the `postgres` user when run as root."""
    return Path(os.environ.get("NOVA_STACK_DIR", f"/var/tmp/nova-stack-{os.getuid()}"))


def _check_options(options: StackOptions) -> None:
    problems = []
    if not 1 <= options.instances <= 8:
        problems.append(f"--instances {options.instances}: must be between 1 and 8")
    if options.restart not in ("always", "never"):
        problems.append(f"--restart {options.restart!r}: must be 'always' or 'never'")
    if options.jwt_algorithm not in ("HS256", "RS256"):
        problems.append(f"--jwt-algorithm {options.jwt_algorithm!r}: must be HS256 or RS256")
    unknown = [r for r in options.latency_proxy if r not in roles.PROXIABLE_ROLES]
    if unknown:
        problems.append(f"--latency-proxy {','.join(unknown)}: only "
                        f"{', '.join(roles.PROXIABLE_ROLES)} can be proxied")
    problems += _listen_problems(options)
    fixed = {"api": options.api_port, "http": options.http_port, "rtmp": options.rtmp_port,
             "postgres": options.postgres_port, "redis": options.redis_port}
    for part, port in fixed.items():
        if port and not roles.port_is_free(port):
            problems.append(f"{part}: port {port} on {listen_host()} is already in use")
    if problems:
        raise StackStartError("; ".join(problems))


def _listen_problems(options: StackOptions) -> list[str]:
    """--listen: an address of this machine, and only with the roles that follow it."""
    if options.listen == LOOPBACK:
        return []
    try:
        ipaddress.IPv4Address(options.listen)
    except ValueError:
        return [f"--listen {options.listen!r}: expected an IPv4 address of this machine"]
    problems = [f"--listen {options.listen}: not with --{name} (those roles listen on "
                "loopback only)" for name, wanted in
                (("standby", options.standby), ("latency-proxy", bool(options.latency_proxy)),
                 ("prometheus", options.prometheus), ("analytics", options.analytics))
                if wanted]
    refused = cannot_listen(options.listen)
    if refused:
        problems.append(f"--listen {options.listen}: cannot listen there ({refused}): not an "
                        "address of this machine (or of this network namespace)")
    return problems


def up(options: StackOptions, timeout_s: float = UP_TIMEOUT_S) -> tuple[StackState, bool]:
    """Start the stack (or reuse the one running in the same run folder).
    Returns (state, reused)."""
    run_dir = options.run_dir
    try:
        existing = read_state(run_dir)
        if supervisor_alive(existing) and existing.status == "ready":
            return existing, True
        if supervisor_alive(existing):
            raise StackStartError(f"a stack in {run_dir} is {existing.status}; wait, or run "
                                  "`nova-harness stack down` first")
    except StackNotRunning:
        pass
    roles.require_binaries(prometheus=options.prometheus, analytics=options.analytics)
    use_listen_host(options.listen)
    _check_options(options)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o755)
    ensure_keys(run_dir)
    (run_dir / "options.json").write_text(json.dumps(
        {**asdict(options), "run_dir": str(run_dir)}, indent=2))
    state_path(run_dir).unlink(missing_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    with open(run_dir / "logs" / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stack.local", "supervise", "--run-dir", str(run_dir)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return _wait_for_ready(run_dir, proc, timeout_s), False


def started_service_env(run_dir: Path) -> dict[str, str]:
    """The NOVA_* settings the stack running in `run_dir` was started with (`{}` when its
    options are not on record)."""
    try:
        raw = json.loads((run_dir / "options.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in (raw.get("service_env") or {}).items()}


def _wait_for_ready(run_dir: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> StackState:
    deadline = time.monotonic() + timeout_s
    log = run_dir / "logs" / "supervisor.log"
    while time.monotonic() < deadline:
        try:
            state = read_state(run_dir)
        except (StackNotRunning, json.JSONDecodeError):
            state = None
        if state is not None and state.status == "ready":
            return state
        if state is not None and state.status == "failed":
            proc.wait(timeout=30)
            raise StackStartError(state.error or f"stack failed to start; log: {log}")
        if proc.poll() is not None:
            raise StackStartError(f"supervisor exited with code {proc.returncode}; log: {log}")
        time.sleep(0.1)
    proc.terminate()
    proc.wait(timeout=30)
    raise StackStartError(f"stack not ready after {timeout_s:.0f}s; log: {log}")


def down(run_dir: Path, timeout_s: float = 60.0) -> list[str]:
    """Stop the stack in `run_dir`; returns the roles that had to be killed directly."""
    state = read_state(run_dir)
    if supervisor_alive(state) and state.supervisor_pid is not None:
        started_at = _create_time(state.supervisor_pid)
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        # Until the process itself is gone: late in its exit it has lost its command line
        # (supervisor_alive would already say no) but is not yet a zombie.
        while is_same_process(state.supervisor_pid, started_at) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
    # Whatever is still running (supervisor killed, or it timed out) is ended here, by pid,
    # only where the pid still belongs to the process the supervisor started.
    killed = []
    for role in read_state(run_dir).roles.values():
        if is_same_process(role.pid, role.create_time) and role.pid is not None:
            if role.kind == "nginx" and role.pgid == role.pid:
                os.killpg(role.pid, signal.SIGKILL)
            else:
                os.kill(role.pid, signal.SIGKILL)
            killed.append(role.name)
    return killed


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def status(run_dir: Path) -> dict[str, Any]:
    """Endpoints and every role with pid, port, liveness and health."""
    state = read_state(run_dir)
    use_listen_host(state.listen)
    running = supervisor_alive(state)
    out: dict[str, Any] = {
        "run_dir": state.run_dir, "status": state.status if running else "not running",
        "supervisor_pid": state.supervisor_pid, "endpoints": state.endpoints, "roles": {},
    }
    for role in state.roles.values():
        alive = running and is_same_process(role.pid, role.create_time)
        out["roles"][role.name] = {
            "kind": role.kind, "pid": role.pid, "port": role.port, **role.extra_ports,
            "state": role.state if running else "stopped", "alive": alive,
            "healthy": alive and _healthy(role.kind, role.port or 0), "restarts": role.restarts,
            "log": role.log,
        }
    return out


def _healthy(kind: str, port: int) -> bool:
    if kind == "api":
        return roles.http_status(f"http://{listen_host()}:{port}/health") == 200
    if kind == "redis":
        return roles.redis_pings(port)
    if kind.startswith("postgres"):
        return roles.pg_ready(port)
    if kind == "prometheus":
        return roles.prometheus_scraped(port)
    if kind == "clickhouse":
        return clickhouse.pings(f"http://{listen_host()}:{port}")
    if kind == "loader":
        return roles.http_status(f"http://{listen_host()}:{port}/health") == 200
    return roles.port_accepts(port)


def control(run_dir: Path, op: str, role: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Ask the running supervisor to start, stop or restart one role."""
    state = read_state(run_dir)
    if not supervisor_alive(state) or state.control_socket is None:
        raise StackNotRunning(f"no running stack in {run_dir}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(state.control_socket)
        sock.sendall(json.dumps({"op": op, "role": role}).encode() + b"\n")
        reply: dict[str, Any] = json.loads(sock.makefile().readline())
    if not reply.get("ok"):
        raise StackStartError(f"{op} {role}: {reply.get('error')}")
    return reply


def log_path(run_dir: Path, role: str) -> Path:
    state = read_state(run_dir)
    if role == "supervisor":
        return run_dir / "logs" / "supervisor.log"
    return Path(state.role(role).log)


def _supervise(run_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s supervisor %(levelname)s %(message)s")
    raw = json.loads((run_dir / "options.json").read_text())
    raw["run_dir"] = Path(raw["run_dir"])
    raw["latency_proxy"] = tuple(raw.get("latency_proxy") or ())
    from stack.supervisor import Supervisor

    return Supervisor(StackOptions(**raw)).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.local")
    parser.add_argument("command", choices=["supervise"])
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    return _supervise(args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
