"""The fault actions and probes Chaos Toolkit experiments call (harness.chaos.actions), against
a real stack with a PostgreSQL standby and latency proxies in front of PostgreSQL and Redis. Each
action must leave an observable effect and a report of what it did."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.chaos import actions as faults
from harness.errors import FaultError
from stack import local, roles
from stack.roles import StackOptions
from tests.support import RunningStack, running_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack("faults", standby=True, latency_proxy=("postgres", "redis")) as running:
        yield running


def _dir(stack: RunningStack) -> str:
    return str(stack.run_dir)


def _create(client: httpx.Client, title: str) -> httpx.Response:
    return client.post("/api/v1/streams", json={"title": title, "description": "d",
                                                "region": "eu-central-1"})


def test_kill_and_start_redis(stack: RunningStack) -> None:
    before = stack.refresh().roles["redis"].pid
    report = faults.kill_role("redis", stack_dir=_dir(stack))
    assert report["pid"] == before and report["signal"] == "SIGKILL"
    assert not roles.redis_pings(stack.refresh().roles["redis"].port or 0)
    assert faults.role_running("redis", stack_dir=_dir(stack)) is False
    started = faults.start_role("redis", stack_dir=_dir(stack))
    assert started["pid"] != before and started["state"] == "running"
    assert roles.redis_pings(stack.refresh().roles["redis"].port or 0)


def test_pause_postgres_makes_it_hang_and_resume_frees_it(stack: RunningStack) -> None:
    report = faults.pause_role("postgres-primary", stack_dir=_dir(stack))
    try:
        assert len(report["paused_pids"]) > 1  # the postmaster and its backends
        assert faults.role_running(report["role"], stack_dir=_dir(stack)) is False
        port = stack.state.roles[report["role"]].port or 0
        # A paused server still accepts TCP (the kernel does) but never answers.
        assert roles.pg_in_recovery(port) is None
    finally:
        faults.resume_role(report["role"], stack_dir=_dir(stack))
    assert faults.role_running(report["role"], stack_dir=_dir(stack)) is True
    assert faults.wait_healthy(30, stack_dir=_dir(stack))["healthy_after_s"] < 30


def test_failover_keeps_acknowledged_writes_and_serves_new_ones(stack: RunningStack) -> None:
    with stack.client(stack.minter.mint(uuid.uuid4())) as client:
        written = [_create(client, f"before-{i}").json()["id"] for i in range(5)]
        killed = faults.kill_role("postgres-primary", stack_dir=_dir(stack))
        promoted = faults.promote_standby(stack_dir=_dir(stack))
        assert promoted["role"] != killed["role"]
        assert wait_for(lambda: _create(client, "after").status_code == 201, 15.0)
        for stream_id in written:
            assert client.get(f"/api/v1/streams/{stream_id}").json()["title"].startswith(
                "before-")
        restored = faults.restore_postgres_pair(stack_dir=_dir(stack))
        assert restored["primary"] == promoted["role"]
        assert [a["op"] for a in restored["actions"]] == ["reseed"]
        old = stack.refresh().roles[killed["role"]]
        # The old primary is back as a standby of the new one, never writable beside it.
        assert roles.pg_in_recovery(old.port or 0) is True
        assert faults.sql_row_present(f"SELECT 1 FROM streams WHERE id = '{written[0]}'",
                                      stack_dir=_dir(stack))
        # Nothing left to restore: the rollback is safe to repeat.
        assert faults.restore_postgres_pair(stack_dir=_dir(stack))["actions"] == []


def _round_trip_ms(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        sock.recv(64)
    return (time.monotonic() - started) * 1000


def test_latency_proxy_delays_then_stops_delaying(stack: RunningStack) -> None:
    proxy = stack.refresh().roles["redis-proxy"].port or 0
    assert _round_trip_ms(proxy) < 50
    report = faults.add_latency("redis", 150, stack_dir=_dir(stack))
    try:
        assert report["method"] == "proxy" and report["observed_round_trip_ms"] >= 120
        assert _round_trip_ms(proxy) >= 120
    finally:
        faults.remove_latency("redis", stack_dir=_dir(stack))
    assert wait_for(lambda: _round_trip_ms(proxy) < 50, 5.0)


def test_latency_on_an_unproxied_role_says_how_to_get_one(tmp_path: object) -> None:
    with running_stack("noproxy") as plain, pytest.raises(FaultError,
                                                        match="--latency-proxy postgres"):
        faults.add_latency("postgres", 100, stack_dir=str(plain.run_dir))


def test_kill_service_instance_is_restarted(stack: RunningStack) -> None:
    before = stack.refresh().roles["api-1"].pid
    faults.kill_role("api", stack_dir=_dir(stack))
    assert faults.wait_healthy(30, stack_dir=_dir(stack))["healthy_after_s"] < 30
    # The supervisor writes the new PID once the instance is healthy: shortly after /health.
    assert wait_for(lambda: stack.refresh().roles["api-1"].pid != before, 5.0)
    assert faults.health_status(_dir(stack)) == 200
    assert faults.stream_list_ms(_dir(stack)) < 1000


def test_kill_nginx_group_and_restore_stack(stack: RunningStack) -> None:
    nginx = stack.refresh().roles["nginx"]
    rtmp = nginx.extra_ports["rtmp"]
    faults.kill_role("nginx", stack_dir=_dir(stack))
    # Workers die with the master (process group): nothing holds the RTMP port any more.
    assert wait_for(lambda: not roles.port_accepts(rtmp), 5.0)
    report = faults.restore_stack(_dir(stack))
    assert "nginx" in report["started"]
    assert roles.port_accepts(rtmp)
    assert faults.restore_stack(_dir(stack))["started"] == []


def test_unknown_role_and_missing_stack_are_fault_errors(stack: RunningStack) -> None:
    with pytest.raises(FaultError, match="no role 'mysql'"):
        faults.kill_role("mysql", stack_dir=_dir(stack))
    with pytest.raises(FaultError, match="signal_name"):
        faults.kill_role("redis", signal_name="SIGHUP", stack_dir=_dir(stack))
    with pytest.raises(FaultError):
        faults.health_status("/var/tmp/no-such-stack")


def test_the_stack_comes_up_after_a_failover_ran_in_its_folder() -> None:
    """The failover's rollback leaves `postgres` a standby of the promoted former standby;
    the next `stack up` of the same folder (here without a standby) must start a writable
    primary holding what was written, not wait 30 s on a read-only one."""
    with running_stack("after-failover", standby=True) as first:
        with first.client(first.minter.mint(uuid.uuid4())) as client:
            written = _create(client, "before-failover").json()["id"]
        faults.kill_role("postgres-primary", stack_dir=_dir(first))
        faults.promote_standby(stack_dir=_dir(first))
        faults.restore_postgres_pair(stack_dir=_dir(first))
        assert (first.run_dir / "postgres" / "standby.signal").exists()
        local.down(first.run_dir)
        state, reused = local.up(StackOptions(run_dir=first.run_dir))
        assert not reused
        primary = state.roles["postgres"]
        assert roles.pg_in_recovery(primary.port or 0) is False
        assert faults.sql_row_present(f"SELECT 1 FROM streams WHERE id = '{written}'",
                                      stack_dir=_dir(first))
        assert "the promoted copy is the primary" in \
            (first.run_dir / "logs" / "supervisor.log").read_text()
