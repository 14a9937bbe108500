"""Fault actions and probes for Chaos Toolkit experiments against the local stack
(`"provider": {"type": "python", "module": "harness.chaos.actions", "func": ...}`).

Everything is found through the stack's state file (`$NOVA_STACK_DIR`, else the default run
folder; every function also takes `stack_dir`). Each action waits until its effect can be
observed and returns what it did, so the journal says it. Signals go only to PIDs the stack's
supervisor (or the harness, for broadcasters) started and recorded — never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.errors import FaultError
from records.recorder import atomic_write_json
from stack import local, roles
from stack.errors import StackError
from stack.state import RoleState, StackState, read_state

Report = dict[str, Any]
_SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
_WAIT_S = 30.0


# -- finding things ----------------------------------------------------------------------

def _stack_dir(stack_dir: str | None) -> Path:
    return Path(stack_dir) if stack_dir else local.default_run_dir()


def _state(stack_dir: str | None) -> StackState:
    try:
        return read_state(_stack_dir(stack_dir))
    except StackError as exc:
        raise FaultError(str(exc)) from None


def resolve_role(state: StackState, role: str) -> RoleState:
    """A role by name; `api` means the first service instance, `postgres-primary` and
    `postgres-replica` whichever PostgreSQL role is writable / in recovery right now."""
    if role in state.roles:
        return state.roles[role]
    if role == "api":
        found = [r for r in state.roles.values() if r.kind == "api"]
    elif role in ("postgres-primary", "postgres-replica"):
        wanted = role == "postgres-replica"
        found = [r for r in state.roles.values() if r.kind.startswith("postgres")
                 and r.state == "running" and roles.pg_in_recovery(r.port or 0) is wanted]
    else:
        found = []
    if not found:
        known = ", ".join([*state.roles, "api", "postgres-primary", "postgres-replica"])
        raise FaultError(f"no role {role!r} in the stack at {state.run_dir} (known: {known})")
    return found[0]


def _alive(pid: int | None, create_time: float | None) -> bool:
    """The same process still exists (a recycled PID does not count)."""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        same = create_time is None or abs(proc.create_time() - create_time) < 0.05
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise FaultError(f"{what} not observed within {timeout_s:.0f} s")
        time.sleep(0.05)
    return round(time.monotonic() - started, 3)


def _processes(role: RoleState) -> list[psutil.Process]:
    """The role's process and its descendants (PostgreSQL backends, nginx workers)."""
    if not _alive(role.pid, role.create_time):
        raise FaultError(f"{role.name} is not running")
    root = psutil.Process(role.pid or 0)
    return [root, *root.children(recursive=True)]


# -- process faults ----------------------------------------------------------------------

def kill_role(role: str, signal_name: str = "SIGKILL", stack_dir: str | None = None) -> Report:
    """Send SIGKILL (or SIGTERM / SIGINT) to a role and wait until its process is gone.
    nginx is signalled as a process group: killing only its master leaves workers holding
    the ports."""
    sig = _SIGNALS.get(signal_name)
    if sig is None:
        raise FaultError(f"signal_name {signal_name!r}: use one of {', '.join(_SIGNALS)}")
    target = resolve_role(_state(stack_dir), role)
    pid, created = target.pid, target.create_time
    if not _alive(pid, created):
        raise FaultError(f"{target.name} is not running")
    if target.kind == "nginx" and target.pgid:
        os.killpg(target.pgid, sig)
    else:
        os.kill(pid or 0, sig)
    gone_s = _wait(lambda: not _alive(pid, created), _WAIT_S, f"{target.name} exit")
    return {"role": target.name, "pid": pid, "signal": signal_name, "gone_after_s": gone_s}


def _control(op: str, role: str, stack_dir: str | None) -> Report:
    target = resolve_role(_state(stack_dir), role)
    started = time.monotonic()
    try:
        reply = local.control(_stack_dir(stack_dir), op, target.name)
    except StackError as exc:
        raise FaultError(str(exc)) from None
    return {"role": target.name, "op": op, "pid": reply["role"].get("pid"),
            "state": reply["role"].get("state"),
            "took_s": round(time.monotonic() - started, 3)}


def stop_role(role: str, stack_dir: str | None = None) -> Report:
    """Stop a role cleanly through the supervisor (it stays down until started)."""
    return _control("stop", role, stack_dir)


def start_role(role: str, stack_dir: str | None = None) -> Report:
    """Start a role through the supervisor; returns once it is healthy. A no-op if running."""
    return _control("start", role, stack_dir)


def _signal_tree(role: str, sig: int, stopped: bool, stack_dir: str | None) -> Report:
    """Send `sig` to a role and all its children; wait until each is (not) stopped."""
    target = resolve_role(_state(stack_dir), role)
    procs = _processes(target)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
    _wait(lambda: all((_status(p) in (psutil.STATUS_STOPPED, "gone")) == stopped
                      or _status(p) == "gone" for p in procs), 10.0,
          f"{target.name} {'paused' if stopped else 'resumed'}")
    return {"role": target.name, f"{'paused' if stopped else 'resumed'}_pids":
            [p.pid for p in procs]}


def pause_role(role: str, stack_dir: str | None = None) -> Report:
    """SIGSTOP a role and its children (it holds its sockets but answers nothing)."""
    return _signal_tree(role, signal.SIGSTOP, True, stack_dir)


def resume_role(role: str, stack_dir: str | None = None) -> Report:
    """SIGCONT a paused role and its children."""
    return _signal_tree(role, signal.SIGCONT, False, stack_dir)


def _status(proc: psutil.Process) -> str:
    try:
        return str(proc.status())
    except psutil.Error:
        return "gone"


# -- PostgreSQL failover -----------------------------------------------------------------

def promote_standby(role: str = "postgres-replica", stack_dir: str | None = None) -> Report:
    """Promote the PostgreSQL standby; returns once it accepts writes."""
    return _control("promote", role, stack_dir)


def restore_postgres_pair(stack_dir: str | None = None) -> Report:
    """Rollback for failover experiments: bring the stack back to one writable primary and
    one streaming standby, whatever point the experiment reached. A dead primary with an
    unpromoted standby is restarted; after a promotion the old primary is rebuilt as a standby
    of the new one (never started writable beside it)."""
    state = _state(stack_dir)
    pair = [r for r in state.roles.values() if r.kind.startswith("postgres")]
    if len(pair) != 2:
        raise FaultError("the stack has no PostgreSQL standby (start it with --standby)")
    recovery = {r.name: roles.pg_in_recovery(r.port or 0) for r in pair}
    writable = [name for name, rec in recovery.items() if rec is False]
    down = [name for name, rec in recovery.items() if rec is None]
    done: list[Report] = []
    if not writable:
        # Nothing was promoted: the old primary comes back as it was.
        done += [start_role(name, stack_dir) for name in down]
    else:
        done += [_control("reseed", name, stack_dir) for name in down]
        if len(writable) == 2:
            raise FaultError("both PostgreSQL roles are writable (split brain): fix by hand")
    return {"actions": done, "primary": writable[0] if writable else
            next(n for n, rec in recovery.items() if rec is not True)}


# -- network faults ----------------------------------------------------------------------

def netem_available() -> bool:
    """Whether this kernel offers `tc netem` (tried in a throwaway network namespace)."""
    try:
        result = subprocess.run(
            ["unshare", "-n", "sh", "-c",
             "ip link set lo up && tc qdisc add dev lo root netem delay 1ms"],
            capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _proxy_settings(state: StackState, role: str) -> Path:
    proxy = state.roles.get(f"{role}-proxy")
    if proxy is None or proxy.data_dir is None:
        how = "netem is available, but" if netem_available() else "this kernel has no netem, and"
        raise FaultError(f"{how} the stack has no latency proxy for {role}: start it with "
                         f"`nova-harness stack up --latency-proxy {role}` (or scenario "
                         f"stack.latency_proxy: [{role}])")
    return Path(proxy.data_dir) / f"{role}.json"


def add_latency(role: str, delay_ms: float, jitter_ms: float = 0.0, loss_pct: float = 0.0,
                stack_dir: str | None = None) -> Report:
    """Delay the service's traffic to `role` (postgres or redis) through the stack's latency
    proxy. Returns once a round trip through the proxy shows the delay."""
    state = _state(stack_dir)
    settings = _proxy_settings(state, role)
    impairment = {"delay_ms": float(delay_ms), "jitter_ms": float(jitter_ms),
                  "loss_pct": float(loss_pct)}
    atomic_write_json(settings, impairment)
    proxy = state.roles[f"{role}-proxy"]
    seen_ms = _wait_round_trip(proxy.port or 0, lambda ms: ms >= 0.8 * float(delay_ms))
    # Said in the journal: on a kernel with netem, tc on the role's port would be the truer
    # fault; the proxy is what this harness applies either way (docs/chaos.md).
    return {"role": role, "method": "proxy", "kernel_netem": netem_available(), **impairment,
            "observed_round_trip_ms": seen_ms}


def remove_latency(role: str, stack_dir: str | None = None) -> Report:
    """Take the delay off again (idempotent)."""
    state = _state(stack_dir)
    settings = _proxy_settings(state, role)
    atomic_write_json(settings, {})
    return {"role": role, "method": "proxy", "delay_ms": 0.0}


def _wait_round_trip(port: int, good: Callable[[float], bool],
                     timeout_s: float = 10.0) -> float:
    """Time a connect + first reply through the proxy until `good(ms)` holds (PostgreSQL and
    Redis both answer an unknown first message with an error, which is enough)."""
    deadline = time.monotonic() + timeout_s
    while True:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"PING\r\n")
                sock.recv(64)
        except OSError:
            pass
        ms = (time.monotonic() - started) * 1000
        if good(ms) or time.monotonic() > deadline:
            return round(ms, 1)
        time.sleep(0.1)


# -- broadcasters ------------------------------------------------------------------------

def _results_dir(results_dir: str | None) -> Path:
    found = results_dir or os.environ.get("NOVA_RESULTS_DIR")
    if not found:
        raise FaultError("interrupting a broadcaster needs a running harness: run the "
                         "experiment from a scenario's chaos: list (sets NOVA_RESULTS_DIR)")
    return Path(found)


def _broadcasters(folder: Path) -> list[dict[str, Any]]:
    try:
        listed: list[dict[str, Any]] = json.loads((folder / "broadcasters.json").read_text())
        return listed
    except (OSError, ValueError):
        return []


def interrupt_broadcaster(seconds: float = 5.0, index: int = 0,
                          results_dir: str | None = None) -> Report:
    """Cut broadcaster `index` of the running harness off for `seconds`: its ffmpeg is
    terminated and the harness tries to republish once the hold ends (as an encoder that
    reconnects would). Returns once that attempt settled: republished (a target with a
    reconnect grace keeps the stream), or refused (without one the drop ends the stream and
    its key is refused)."""
    folder = _results_dir(results_dir)
    listed = _broadcasters(folder)
    if not 0 <= index < len(listed) or listed[index].get("pid") is None:
        raise FaultError(f"no publishing broadcaster #{index} in {folder}/broadcasters.json")
    entry = listed[index]
    control = folder / "control"
    control.mkdir(exist_ok=True)
    atomic_write_json(control / f"hold-{index}.json", {"until": time.time() + float(seconds)})
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(entry["pid"]), signal.SIGTERM)

    def settled() -> bool:
        now = _broadcasters(folder)[index]
        return now.get("state") in ("active", "failed") and now.get("pid") != entry["pid"]
    took_s = _wait(settled, float(seconds) + _WAIT_S, f"broadcaster #{index} reconnect outcome")
    after = _broadcasters(folder)[index]
    # "failed": the drop ended the stream and its key was refused (no reconnect grace).
    return {"stream": entry.get("stream"), "old_pid": entry["pid"], "new_pid": after.get("pid"),
            "outcome": "republished" if after.get("state") == "active" else "refused",
            "settled_after_s": took_s}


# -- rollback for every local experiment -------------------------------------------------

def restore_stack(stack_dir: str | None = None) -> Report:
    """Resume paused roles, take latency off, start roles that are down (a PostgreSQL pair is
    handled by restore_postgres_pair). Safe to run at any point, and twice."""
    state = _state(stack_dir)
    report: Report = {"resumed": [], "latency_removed": [], "started": []}
    for role in state.roles.values():
        if _alive(role.pid, role.create_time) and any(
                _status(p) == psutil.STATUS_STOPPED for p in _processes(role)):
            resume_role(role.name, stack_dir)
            report["resumed"].append(role.name)
        if role.kind == "proxy":
            upstream = role.name.removesuffix("-proxy")
            remove_latency(upstream, stack_dir)
            report["latency_removed"].append(upstream)
    pair = [r for r in state.roles.values() if r.kind.startswith("postgres")]
    if len(pair) == 2:
        report["postgres"] = restore_postgres_pair(stack_dir)
    for role in _state(stack_dir).roles.values():
        if role.kind.startswith("postgres") and len(pair) == 2:
            continue
        if not _alive(role.pid, role.create_time):
            start_role(role.name, stack_dir)
            report["started"].append(role.name)
    return report


def wait_healthy(timeout_s: float = 60.0, stack_dir: str | None = None) -> Report:
    """Wait until the service's /health answers 200 again (ends a fault window whose
    recovery belongs to the target, e.g. a restarted instance)."""
    took_s = _wait(lambda: health_status(stack_dir, timeout_s=1.0) == 200, float(timeout_s),
                   "/health 200")
    return {"healthy_after_s": took_s}


# -- probes ------------------------------------------------------------------------------

def role_running(role: str, stack_dir: str | None = None) -> bool:
    """Whether the role's recorded process is alive and not paused."""
    target = resolve_role(_state(stack_dir), role)
    return _alive(target.pid, target.create_time) and _status(
        psutil.Process(target.pid or 0)) != psutil.STATUS_STOPPED


def health_status(stack_dir: str | None = None, timeout_s: float = 3.0) -> int:
    """HTTP status of the service's /health (0 when it does not answer)."""
    base = _state(stack_dir).endpoints.get("api_base", "")
    try:
        return httpx.get(f"{base}/health", timeout=timeout_s).status_code
    except httpx.HTTPError:
        return 0


def stream_list_ms(stack_dir: str | None = None, timeout_s: float = 5.0) -> float:
    """Milliseconds for an authenticated GET of the active stream list; a huge value when it
    fails, so a tolerance range reads as 'answered, and fast enough'."""
    from harness.auth.keys import minter_for

    folder = _stack_dir(stack_dir)
    base = _state(stack_dir).endpoints.get("api_base", "")
    token = minter_for(run_dir=folder).mint()
    started = time.monotonic()
    try:
        response = httpx.get(f"{base}/api/v1/streams/active",
                             headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)
    except httpx.HTTPError:
        return 1e9
    elapsed_ms = (time.monotonic() - started) * 1000
    return round(elapsed_ms, 1) if response.status_code == 200 else 1e9


def sql_value(query: str, stack_dir: str | None = None) -> str:
    """First column of the first row of `query` on the writable PostgreSQL ('' if none)."""
    state = _state(stack_dir)
    target = resolve_role(state, "postgres-primary") if any(
        r.kind == "postgres-standby" for r in state.roles.values()) else state.roles["postgres"]
    result = subprocess.run(
        [str(roles.pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(target.port),
         "-U", "postgres", "-d", roles.DATABASE, "-tAc", query],
        capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        raise FaultError(f"query failed on {target.name}: {result.stderr.strip()[:200]}")
    return result.stdout.strip().split("\n")[0]


def sql_row_present(query: str, stack_dir: str | None = None) -> bool:
    """Whether `query` returns at least one row on the writable PostgreSQL."""
    return sql_value(query, stack_dir) != ""
