"""The local stack's state file: what runs where. Written by the supervisor, read by the CLI,
the harness and the fault actions (`<run-dir>/state.json`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from stack.errors import StackNotRunning

STATE_SCHEMA = 1


@dataclass
class RoleState:
    """One supervised process of the stack."""

    name: str
    kind: str  # postgres | postgres-standby | redis | nginx | api | proxy | prometheus |
    #            kafka | clickhouse | loader
    command: list[str]
    log: str
    port: int | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)
    data_dir: str | None = None
    restart: str = "never"  # never | always
    pid: int | None = None
    pgid: int | None = None
    create_time: float | None = None
    state: str = "pending"  # pending | running | exited | stopped
    exit_code: int | None = None
    restarts: int = 0


@dataclass
class StackState:
    """The whole stack: status, endpoints and roles."""

    run_dir: str
    status: str = "starting"  # starting | ready | failed | stopping | stopped
    error: str | None = None
    supervisor_pid: int | None = None
    started_at: float | None = None
    ready_at: float | None = None
    control_socket: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    roles: dict[str, RoleState] = field(default_factory=dict)
    listen: str = "127.0.0.1"  # the address every listener uses (`stack up --listen`)
    schema: int = STATE_SCHEMA

    def role(self, name: str) -> RoleState:
        try:
            return self.roles[name]
        except KeyError:
            known = ", ".join(sorted(self.roles)) or "none"
            raise StackNotRunning(f"the stack has no role {name!r} (roles: {known})") from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        roles = {name: RoleState(**value) for name, value in data.get("roles", {}).items()}
        return cls(**{**data, "roles": roles})


def state_path(run_dir: Path) -> Path:
    return run_dir / "state.json"


def write_state(state: StackState) -> None:
    """Atomically replace the state file (readers never see half a document)."""
    path = state_path(Path(state.run_dir))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    os.replace(tmp, path)


def read_state(run_dir: Path) -> StackState:
    path = state_path(run_dir)
    try:
        return StackState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise StackNotRunning(f"no stack state in {run_dir} (start one with "
                              "`nova-harness stack up`)") from None


def is_same_process(pid: int | None, create_time: float | None) -> bool:
    """True when `pid` is still the process we started (not a reused pid)."""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.5
    except psutil.Error:
        return False


def supervisor_alive(state: StackState) -> bool:
    if state.supervisor_pid is None:
        return False
    try:
        proc = psutil.Process(state.supervisor_pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "stack.local" in " ".join(proc.cmdline())
    except psutil.Error:
        return False
