"""Checklist §2, the viewer socket: a conformance walk of the protocol the profile describes
(Nova's docs/websocket-protocol.md for `nova-doc`). One live stream, three viewers; each step is
a check line, so a target fails exactly the steps it breaks. Frames are read one by one without
the client library's automatic close reply, so the close handshake itself is judged."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

import websocket

from harness.errors import CheckFailed, CheckSkipped
from harness.suites.actions import publishing
from harness.suites.base import (
    Check,
    Evidence,
    Session,
    Target,
    expander,
    source_address_for,
)

STEPS = (
    ("ws connection-established", "§2 WS: connection_established first, with its documented "
                                  "fields"),
    ("ws late-joiner", "§2 WS: a viewer joining a live stream gets stream_started"),
    ("ws report-issue", "§2 WS: report_issue accepted (no error, the socket stays)"),
    ("ws stream-info", "§2 WS: get_stream_info → stream_info with the request_id and every "
                       "documented field"),
    ("ws viewer-counts", "§2 WS: viewer_count_changed after a join and after a leave"),
    ("ws unknown-event", "§2 WS: an unknown event → an error event or close 1003"),
    ("ws ping-pong", "§2 WS: the server's ping carries a sequence; a pong echoing it is taken"),
    ("ws stream-ended", "§2 WS: stream_ended with its documented fields when the stream ends"),
    ("ws clean-close", "§2 WS: then a clean close: 1000, the server waits for the client's "
                       "close frame, then closes TCP (RFC 6455 §7.1.1)"),
)
FRAME_WITHIN_S = 5.0
REPORT_QUIET_S = 1.0
ENDED_WITHIN_S = 15.0  # a broadcaster's stop may wait out the target's reconnect grace
HOLD_FOR_CLIENT_CLOSE_S = 0.5  # a server must wait longer than this for our close frame
UNKNOWN_EVENT = "nova_harness_unknown_event"
Status = Literal["PASS", "FAIL", "SKIPPED"]
TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


@dataclass(frozen=True)
class Frame:
    event: str  # the contract's name (the profile maps wire names)
    data: dict[str, Any]


@dataclass
class Outcome:
    status: Status
    reason: str
    evidence: list[Evidence] = field(default_factory=list)


class WalkSocket:
    """One viewer socket read frame by frame: protocol pings answered, JSON frames decoded, the
    server's close frame recorded and not answered until `finish_close`."""

    def __init__(self, target: Target, stream_id: str, token: str, number: int) -> None:
        profile = target.profile
        url = profile.ws_url(target.ws_base, stream_id, token)
        self.names = profile.event_map()
        self.opened_s = time.monotonic()
        sock = None
        source = source_address_for(target, number)
        if source:
            where = urlsplit(url)
            sock = socket.create_connection((where.hostname, where.port or 80), FRAME_WITHIN_S,
                                            source_address=(source, 0))
        self.ws = websocket.create_connection(url, header=profile.ws_headers(token),
                                              timeout=FRAME_WITHIN_S, socket=sock,
                                              skip_utf8_validation=True)
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self.pongs = 0

    def next(self, timeout_s: float) -> Frame | None:
        """The next JSON frame; None on timeout or once the server has sent its close."""
        deadline = time.monotonic() + timeout_s
        while self.close_code is None and (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                frame = self.ws.recv_frame()  # type: ignore[no-untyped-call]
            except websocket.WebSocketTimeoutException:
                return None
            except (websocket.WebSocketException, OSError):
                self.close_code = -1  # the connection went away without a close frame
                return None
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(frame.data[:2], "big") if frame.data else 1005
            elif frame.opcode == websocket.ABNF.OPCODE_PING:
                self.ws.pong(frame.data)
            elif frame.opcode == websocket.ABNF.OPCODE_PONG:
                self.pongs += 1
            elif frame.opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(frame.data)
                wire = str(message.get("event"))
                decoded = Frame(self.names.get(wire, wire), message.get("data") or {})
                self.frames.append(decoded)
                return decoded
        return None

    def wait_for(self, event: str, timeout_s: float = FRAME_WITHIN_S,
                 where: Callable[[Frame], bool] = lambda frame: True) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            frame = self.next(left)
            if frame is None:
                return None
            if frame.event == event and where(frame):
                return frame
        return None

    def send(self, wire_event: str, **data: Any) -> None:
        self.ws.send(json.dumps({"event": wire_event, "data": data}))

    def finish_close(self) -> str | None:
        """After the server's close frame: what breaks RFC 6455's handshake, or None."""
        raw = self.ws.sock
        assert raw is not None
        raw.settimeout(HOLD_FOR_CLIENT_CLOSE_S)
        try:
            if raw.recv(1) == b"":
                return (f"the server closed TCP within {HOLD_FOR_CLIENT_CLOSE_S:g} s of its "
                        f"close frame, before the client's close (an unclean close)")
        except TimeoutError:
            pass  # it waits for us, as it must
        except OSError as exc:
            return f"the connection was reset before the client's close ({exc})"
        self.ws.send_close()
        raw.settimeout(FRAME_WITHIN_S)
        try:
            if raw.recv(1) != b"":
                return "the server sent data after the close handshake"
        except TimeoutError:
            return f"the server kept TCP open {FRAME_WITHIN_S:g} s after the close handshake"
        except OSError:
            pass
        return None

    def close(self) -> None:
        try:
            self.ws.close(timeout=1.0)
        except (websocket.WebSocketException, OSError):
            self.ws.shutdown()  # type: ignore[no-untyped-call]


def field_problems(target: Target, frame: Frame) -> list[str]:
    """Documented fields of `frame`'s event that are missing or of the wrong JSON type."""
    problems = []
    for name, kind in target.profile.ws.fields.get(frame.event, {}).items():
        if name not in frame.data:
            problems.append(f"{frame.event} lacks {name}")
        elif not TYPES[kind](frame.data[name]):
            problems.append(f"{frame.event}.{name} = {frame.data[name]!r} is not {kind}")
    return problems


class Walk:
    """The walk, run once for all its lines (the first line to ask runs it)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.outcomes: dict[str, Outcome] | None = None

    def outcome(self, step: str) -> Outcome:
        if self.outcomes is None:
            self.outcomes = self._run()
        return self.outcomes[step]

    def _run(self) -> dict[str, Outcome]:
        s = Session(self.target, source_address_for(self.target, 900))
        outcomes: dict[str, Outcome] = {}
        try:
            unsupported = self._unsupported()
            if unsupported:
                return {step: Outcome("SKIPPED", unsupported) for step, _ in STEPS}
            _Steps(s, outcomes).run()
        except CheckFailed as exc:  # the walk could not go on: this step and the rest fail
            self._stopped(outcomes, str(exc), s.evidence)
        except Exception as exc:  # a target answering what no document allows, e.g. not JSON
            self._stopped(outcomes, f"{type(exc).__name__}: {exc}", s.evidence)
        finally:
            s.close()
        for step, _ in STEPS:
            outcomes.setdefault(step, Outcome("FAIL", "the walk stopped before this step"))
        return outcomes

    @staticmethod
    def _stopped(outcomes: dict[str, Outcome], reason: str, evidence: list[Evidence]) -> None:
        for step, _ in STEPS:
            outcomes.setdefault(step, Outcome("FAIL", f"the walk stopped: {reason}",
                                              list(evidence)))

    def _unsupported(self) -> str | None:
        profile = self.target.profile
        if profile.ws.envelope != "event":
            return (f"profile {profile.name}: the socket's envelope is {profile.ws.envelope!r}, "
                    f"not lifecycle events: there is no protocol to walk")
        return None


class _Steps:
    """The steps in order, each recording its outcome; a step that cannot go on raises
    CheckFailed, which fails it and every step after it."""

    def __init__(self, s: Session, outcomes: dict[str, Outcome]) -> None:
        self.s, self.outcomes = s, outcomes
        self.target = s.target
        self.wire = {contract: wire for contract, wire in s.target.profile.ws.events.items()}

    def record(self, step: str, problems: list[str], passed: str) -> None:
        evidence = list(self.s.evidence)
        self.s.evidence.clear()
        self.outcomes[step] = Outcome("FAIL", "; ".join(problems), evidence) if problems \
            else Outcome("PASS", passed, evidence)

    def skip(self, step: str, reason: str) -> None:
        self.outcomes[step] = Outcome("SKIPPED", reason)

    def note(self, what: str, excerpt: str = "", status: int | None = None) -> None:
        self.s.evidence.append(Evidence(what, status, excerpt[:200], 0.0))

    @contextmanager
    def viewer(self, stream_id: str, number: int) -> Iterator[WalkSocket]:
        started = time.perf_counter()
        try:
            socket_ = WalkSocket(self.target, stream_id, self.s.user()[1], number)
        except websocket.WebSocketBadStatusException as exc:
            body = (exc.resp_body or b"").decode(errors="replace")
            self.s.note(f"WS connect to stream {stream_id[:8]}", exc.status_code, body, started)
            raise CheckFailed(f"the viewer socket refused the upgrade: HTTP {exc.status_code} "
                              f"at {self.target.profile.ws.url}") from None
        except (websocket.WebSocketException, OSError) as exc:
            raise CheckFailed(f"the viewer socket did not open: {exc}") from None
        self.s.note(f"WS connect to stream {stream_id[:8]}", 101, "", started)
        try:
            yield socket_
        finally:
            socket_.close()

    def run(self) -> None:
        _, owner = self.s.user()
        stream_id = self.s.stream_id(self.s.create_stream(owner, "contract walk"))
        with ExitStack() as stack:
            publisher = stack.enter_context(publishing(self.s, stream_id))
            viewer = stack.enter_context(self.viewer(stream_id, 901))
            self.joining(viewer)
            self.requests(viewer)
            self.counts(viewer, stream_id)
            self.unknown_event(stream_id)
            self.keepalive(viewer)
            self.ending(viewer, stream_id, owner, publisher.stop)

    def joining(self, viewer: WalkSocket) -> None:
        first = viewer.next(FRAME_WITHIN_S)
        if first is None or first.event != "connection_established":
            got = "nothing" if first is None else first.event
            raise CheckFailed(f"the first frame was {got}, not connection_established")
        self.note("first frame", json.dumps(first.data))
        self.record("ws connection-established", field_problems(self.target, first),
                    "connection_established first, every documented field of its type")
        started = viewer.wait_for("stream_started")
        if started is None:
            self.record("ws late-joiner", ["a viewer joining the live stream got no "
                                           f"stream_started within {FRAME_WITHIN_S:g} s "
                                           f"(frames: {[f.event for f in viewer.frames]})"], "")
            return
        self.note("stream_started", json.dumps(started.data))
        self.record("ws late-joiner", field_problems(self.target, started),
                    "stream_started right after joining the live stream, fields as documented")

    def requests(self, viewer: WalkSocket) -> None:
        viewer.send(self.wire.get("report_issue") or "report_issue", issue_type="buffering",
                    severity="low", description="sent by the contract walk",
                    client_info={"player": "nova-harness"})
        self.note("sent report_issue")
        info_request = self.target.profile.ws.info_request
        if info_request is None:
            error = viewer.wait_for("error", REPORT_QUIET_S)
            self.skip("ws stream-info", f"profile {self.target.profile.name} names no info "
                                        f"request")
        else:
            request_id = f"contract-{uuid.uuid4().hex[:8]}"
            viewer.send(info_request, request_id=request_id)
            info = viewer.wait_for("stream_info")
            errors = [f for f in viewer.frames if f.event == "error"]
            error = errors[0] if errors else None
        problems = [f"report_issue answered with an error: {json.dumps(error.data)}"] \
            if error else []
        if viewer.close_code is not None:
            problems.append(f"the socket closed ({viewer.close_code}) after report_issue")
        self.record("ws report-issue", problems, "report_issue taken: no error, the socket "
                                                 "still answers")
        if info_request is not None:
            self.stream_info(info, request_id)

    def stream_info(self, info: Frame | None, request_id: str) -> None:
        if info is None:
            self.record("ws stream-info", [f"no stream_info within {FRAME_WITHIN_S:g} s"], "")
            return
        self.note("stream_info", json.dumps(info.data))
        problems = field_problems(self.target, info)
        if info.data.get("request_id") != request_id:
            problems.append(f"request_id {info.data.get('request_id')!r}, sent {request_id!r}")
        self.record("ws stream-info", problems, "stream_info echoes the request_id, every "
                                                "documented field of its type")

    def counts(self, viewer: WalkSocket, stream_id: str) -> None:
        def count_is(wanted: int) -> Callable[[Frame], bool]:
            return lambda frame: frame.data.get("viewer_count") == wanted

        problems: list[str] = []
        with self.viewer(stream_id, 902):
            joined = viewer.wait_for("viewer_count_changed", where=count_is(2))
        left = viewer.wait_for("viewer_count_changed", where=count_is(1))
        for what, frame in (("a second viewer joined", joined), ("it left", left)):
            if frame is None:
                problems.append(f"no viewer_count_changed within {FRAME_WITHIN_S:g} s after "
                                f"{what}")
            else:
                self.note(f"viewer_count_changed after {what}", json.dumps(frame.data))
                problems += field_problems(self.target, frame)
        self.record("ws viewer-counts", problems, "viewer_count_changed to 2 after a join, to 1 "
                                                  "after the leave")

    def unknown_event(self, stream_id: str) -> None:
        with self.viewer(stream_id, 903) as other:
            other.wait_for("stream_started", 1.0)
            other.send(UNKNOWN_EVENT, probe=True)
            error = other.wait_for("error")
            code = other.close_code
        if error is not None:
            self.note(f"sent {UNKNOWN_EVENT}", json.dumps(error.data))
            self.record("ws unknown-event", field_problems(self.target, error),
                        f"an error event ({error.data.get('error_code')})")
        else:
            self.note(f"sent {UNKNOWN_EVENT}", f"close code {code}")
            self.record("ws unknown-event", [] if code == 1003 else
                        [f"no error event and no close 1003 within {FRAME_WITHIN_S:g} s "
                         f"(close code {code})"], "the socket closed with 1003")

    def keepalive(self, viewer: WalkSocket) -> None:
        mode, step = self.target.profile.ws.keepalive, "ws ping-pong"
        if mode == "protocol":
            viewer.ws.ping(b"contract")
            viewer.next(FRAME_WITHIN_S)
            self.record(step, [] if viewer.pongs else ["no pong frame for a ping frame"],
                        "a protocol ping answered with a pong")
            return
        if mode != "json":
            self.skip(step, f"profile {self.target.profile.name}: keepalive {mode!r} has no "
                            f"server ping to answer")
            return
        wait_s = self.target.profile.ws.ping_interval_s + FRAME_WITHIN_S
        ping = viewer.wait_for("ping", max(0.0, viewer.opened_s + wait_s - time.monotonic()))
        if ping is None:
            self.record(step, [f"no ping within {wait_s:g} s of connecting (the profile's "
                               f"interval is {self.target.profile.ws.ping_interval_s:g} s)"], "")
            return
        self.note("ping", json.dumps(ping.data))
        viewer.send(self.wire.get("pong") or "pong", sequence=ping.data.get("sequence"))
        problems = field_problems(self.target, ping)
        refused = viewer.wait_for("error", REPORT_QUIET_S)
        if refused is not None or viewer.close_code is not None:
            problems.append(f"the pong was refused ({refused.data if refused else 'closed'})")
        self.record(step, problems, f"ping sequence {ping.data.get('sequence')}, the pong "
                                    f"echoing it taken")

    def ending(self, viewer: WalkSocket, stream_id: str, owner: str,
               stop_publishing: Callable[[], object]) -> None:
        """End the stream (DELETE, or the broadcaster stops where the profile has no DELETE),
        then judge stream_ended and the close handshake."""
        profile = self.target.profile
        if profile.paths.delete is not None:
            self.s.request("DELETE", profile.path("delete", stream_id), token=owner)
        else:
            stop_publishing()
            self.note("the broadcaster stopped (the profile has no DELETE)")
        ended = viewer.wait_for("stream_ended", ENDED_WITHIN_S)
        if ended is None:
            self.record("ws stream-ended", [f"no stream_ended within {ENDED_WITHIN_S:g} s of "
                                            f"the end"], "")
            raise CheckFailed("no stream_ended, so no close to judge")
        self.note("stream_ended", json.dumps(ended.data))
        self.record("ws stream-ended", field_problems(self.target, ended),
                    "stream_ended, every documented field of its type")
        viewer.next(FRAME_WITHIN_S)  # up to the close frame
        problems = [] if viewer.close_code == 1000 else [
            f"close code {viewer.close_code} after stream_ended, expected 1000"]
        if viewer.close_code not in (None, -1):
            problem = viewer.finish_close()
            problems += [problem] if problem else []
        self.note("close handshake", f"server close {viewer.close_code}")
        self.record("ws clean-close", problems, "close 1000, the server waited for the client's "
                                                "close frame, then closed TCP")


@expander("contract")
def walk_checks(target: Target) -> list[Check]:
    """The walk's steps as check lines (one walk per suite run)."""
    walk = Walk(target)
    return [Check("contract", step, checklist, partial(_step_line, walk, step))
            for step, checklist in STEPS]


def _step_line(walk: Walk, step: str, s: Session) -> str:
    outcome = walk.outcome(step)
    s.evidence.extend(outcome.evidence)
    if outcome.status == "FAIL":
        raise CheckFailed(outcome.reason)
    if outcome.status == "SKIPPED":
        raise CheckSkipped(outcome.reason)
    return outcome.reason
