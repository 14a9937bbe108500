"""The run's Locust master when workers take part: the address it listens on, who joined,
each worker's clock against the master's, and workers lost while the load ran
(docs/distributed.md)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import gevent

from harness.errors import TargetUnreachable
from harness.load.context import UserContext
from records.documents import Validity, WorkerRecord
from stack.address import cannot_listen

CLOCK_PROBE = "nova_clock"
CLOCK_REPLY = "nova_clock_reply"
PLAN = "nova_plan"
HEALTH = "nova_worker_health"  # a worker's SelfWatch summary, as the load stops
PROBES_PER_ROUND = 5     # the round trip of the quickest probe bounds the offset best
PROBE_SPACING_S = 0.05
POLL_S = 1.0             # how often the worker list is read (Locust's heartbeats are 1 s)
VIEWER_CLASS = "Viewer"  # the name engine.user_classes gives the viewers' class


def bind_problems(text: str, option: str = "--master-bind") -> list[str]:
    """What is wrong with a HOST:PORT the master should listen on (port 0: a free one)."""
    host, _, port = text.rpartition(":")
    problems = []
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return [f"{option} {text!r}: expected HOST:PORT (port 0-65535), e.g. 10.0.0.5:5557"]
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        problems.append(f"{option} {text!r}: HOST must be an IP address of this machine "
                        "(or 0.0.0.0 for every interface)")
    return problems


def bind_taken(host: str, port: int, option: str = "--master-bind") -> list[str]:
    """Whether this machine can listen on host:port now (checked before anything starts)."""
    refused = cannot_listen(host, port)
    return [f"{option} {host}:{port}: cannot listen there ({refused}): not an address of "
            "this machine, or the port is taken"] if refused else []


def split_bind(text: str) -> tuple[str, int]:
    """HOST:PORT (already checked by bind_problems) as (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Roster:
    """Who takes part, for the master: `start()` listens for joins and clock replies and reads
    Locust's worker list every second; a worker that goes missing (no heartbeat for 3 s) or
    quits while the load runs is recorded as `worker_lost` with the viewers it held.
    `load_ended()` marks the point after which departures are expected."""

    def __init__(self, runner: Any, ctx: UserContext, probe_interval_s: float) -> None:
        self.runner, self.ctx = runner, ctx
        self._plan: dict[str, Any] | None = None
        self.probe_interval_s = probe_interval_s
        self.workers: dict[str, WorkerRecord] = {}
        self._pending: dict[int, float] = {}  # probe number → master time sent
        self._round: dict[str, list[tuple[float, float]]] = {}  # id → (offset, rtt) ms
        self._probe_number = 0
        self._departures_expected = False
        self._greenlets: list[Any] = []

    def start(self) -> None:
        self.runner.register_message(CLOCK_REPLY, lambda msg, **_: self._on_reply(msg))
        self.runner.register_message(HEALTH, lambda msg, **_: self._on_health(msg))
        self._greenlets = [gevent.spawn(self._watch), gevent.spawn(self._probe_rounds)]

    def stop(self) -> None:
        gevent.killall(self._greenlets)
        self._refresh()  # who has left by now
        if self._departures_expected:  # the others were told to quit with the run
            for seen in self._connected():
                seen.left_at = time.time()

    def send_plan(self, plan: dict[str, Any]) -> None:
        """The plan to every worker now, and to any that joins later."""
        self._plan = plan
        self.runner.send_message(PLAN, plan)

    def load_ended(self) -> None:
        self._departures_expected = True

    def wait_for(self, count: int, timeout_s: float,
                 local_procs: tuple[Any, ...] = ()) -> None:
        """Until `count` workers are connected and have answered a clock round; an error
        naming those that did join when the time runs out (or a local worker exits)."""
        deadline = time.time() + timeout_s
        while sum(w.clock_rounds > 0 for w in self._connected()) < count:
            if time.time() > deadline or any(p.poll() is not None for p in local_procs):
                joined = ", ".join(f"{w.name or w.client_id} from {w.host or '?'}"
                                   for w in self._connected()) or "none"
                raise TargetUnreachable(
                    f"{len(self._connected())} of {count} workers joined within "
                    f"{timeout_s:.0f} s (joined: {joined})",
                    hint="start them with `nova-harness worker --master HOST:PORT` on hosts "
                         "that reach the master's address; see docs/distributed.md")
            self._refresh()
            gevent.sleep(0.2)

    def records(self) -> list[dict[str, Any]]:
        """Every worker seen, for the manifest."""
        return [w.model_dump() for w in self.workers.values()]

    def _connected(self) -> list[WorkerRecord]:
        return [w for w in self.workers.values() if w.lost_at is None and w.left_at is None]

    def _watch(self) -> None:
        while True:
            self._refresh()
            gevent.sleep(POLL_S)

    def _refresh(self) -> None:
        now = time.time()
        present = dict(self.runner.clients.items())
        for client_id, node in present.items():
            seen = self.workers.get(client_id)
            if seen is None:
                seen = self.workers[client_id] = WorkerRecord(client_id=client_id,
                                                              joined_at=now)
                gevent.spawn(self._probe_round, client_id)
            if node.state == "missing":
                self._gone(seen, now, "stopped sending heartbeats")
            else:
                seen.viewers_now = int(node.user_classes_count.get(VIEWER_CLASS, 0))
                seen.viewers_max = max(seen.viewers_max, seen.viewers_now)
        for client_id, seen in self.workers.items():
            if client_id not in present:
                self._gone(seen, now, "quit")

    def _gone(self, seen: WorkerRecord, now: float, how: str) -> None:
        if seen.lost_at is not None or seen.left_at is not None:
            return
        if self._departures_expected:
            seen.left_at = now
            return
        seen.lost_at = now
        self.ctx.event("worker_lost", user=seen.name or seen.client_id,
                       value=float(seen.viewers_now),
                       detail=f"{how}; held {seen.viewers_now} viewers; host {seen.host or '?'}"
                              f" pid {seen.pid}")

    def _probe_rounds(self) -> None:
        while True:
            gevent.sleep(self.probe_interval_s)
            for seen in self._connected():
                gevent.spawn(self._probe_round, seen.client_id)

    def _probe_round(self, client_id: str) -> None:
        """A few probes a little apart; the reply with the shortest round trip is recorded."""
        self._round[client_id] = []
        sent = []
        for _ in range(PROBES_PER_ROUND):
            self._probe_number += 1
            sent.append(self._probe_number)
            self._pending[self._probe_number] = time.time()
            self.runner.send_message(CLOCK_PROBE, {"probe": self._probe_number},
                                     client_id=client_id)
            gevent.sleep(PROBE_SPACING_S)
        gevent.sleep(1.0)  # the last replies
        for probe in sent:  # a reply later than this is not used
            self._pending.pop(probe, None)
        replies = self._round.pop(client_id, [])
        seen = self.workers.get(client_id)
        if seen is None:
            return
        if replies:
            self._record_round(seen, *min(replies, key=lambda r: r[1]))
        elif seen.clock_rounds == 0 and seen in self._connected():
            # Probes that reached a worker still starting are not answered: ask again.
            gevent.spawn(self._probe_round, client_id)

    def validities(self) -> list[dict[str, Any]]:
        """Each worker's last reported generator health."""
        return [w.validity.model_dump() for w in self.workers.values()
                if w.validity is not None]

    def _on_health(self, msg: Any) -> None:
        seen = self.workers.get(msg.node_id)
        if seen is not None:
            seen.validity = Validity.model_validate(msg.data)

    def _on_reply(self, msg: Any) -> None:
        received = time.time()
        data = msg.data
        sent = self._pending.pop(int(data["probe"]), None)
        seen = self.workers.get(msg.node_id)
        if sent is None or seen is None:
            return
        seen.name, seen.host, seen.pid = str(data["name"]), str(data["host"]), int(data["pid"])
        seen.validity = Validity.model_validate(data["validity"])
        offset_ms = (float(data["worker_ts"]) - (sent + received) / 2) * 1000
        self._round.setdefault(msg.node_id, []).append((offset_ms, (received - sent) * 1000))

    def _record_round(self, seen: WorkerRecord, offset_ms: float, rtt_ms: float) -> None:
        bound_ms = rtt_ms / 2
        if seen.clock_bound_ms is None or bound_ms < seen.clock_bound_ms:
            seen.clock_offset_ms, seen.clock_bound_ms = round(offset_ms, 3), round(bound_ms, 3)
        if seen.clock_offset_max_ms is None or abs(offset_ms) > abs(seen.clock_offset_max_ms):
            seen.clock_offset_max_ms = round(offset_ms, 3)
        if seen.clock_rounds == 0:
            self.ctx.event("worker_joined", user=seen.name, value=None,
                           detail=f"host {seen.host} pid {seen.pid}")
            if self._plan is not None:  # a late joiner: the others have theirs
                self.runner.send_message(PLAN, self._plan, client_id=seen.client_id)
        seen.clock_rounds += 1
        self.ctx.event("worker_clock", user=seen.name, value=round(offset_ms, 3),
                       detail=f"rtt_ms={rtt_ms:.3f}")


def answer_clock_probes(runner: Any, name: str, host: str, pid: int,
                        health: Callable[[], dict[str, Any]]) -> None:
    """On a worker: answer each of the master's clock probes with this process's time (and
    its generator health so far)."""
    def reply(msg: Any, **_: Any) -> None:
        runner.send_message(CLOCK_REPLY, {"probe": msg.data["probe"], "worker_ts": time.time(),
                                          "name": name, "host": host, "pid": pid,
                                          "validity": health()})
    runner.register_message(CLOCK_PROBE, reply)


def report_health(runner: Any, validity: dict[str, Any]) -> None:
    """On a worker, as the load stops: its generator health for the run's validity."""
    runner.send_message(HEALTH, validity)


def merged_validity(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator's health over every process that made load: saturated when any was."""
    return {"cpu_max_pct": max(p["cpu_max_pct"] for p in parts),
            "loop_lag_max_ms": max(p["loop_lag_max_ms"] for p in parts),
            "saturated_seconds": max(p["saturated_seconds"] for p in parts),
            "late_sends": sum(p["late_sends"] for p in parts),
            "saturated": any(p["saturated"] for p in parts)}
