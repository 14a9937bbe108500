"""The smoke run behind `make demo` and `nova-harness smoke`: one stream, a few viewers, one
ffmpeg publisher against the running local stack; every step timed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.auth.keys import minter_for
from harness.errors import TargetUnreachable
from harness.load.publisher import Publisher, ensure_clip
from harness.suites.viewer_probe import ViewerProbe
from stack.errors import StackNotRunning
from stack.state import read_state


@dataclass
class SmokeStep:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    steps: list[SmokeStep] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append(SmokeStep(name, ok, detail))
        return ok

    def lines(self) -> list[str]:
        return [f"  {'ok  ' if s.ok else 'FAIL'} {s.name:<28} {s.detail}" for s in self.steps]


def _wait(predicate: object, timeout_s: float, poll_s: float = 0.05) -> float | None:
    assert callable(predicate)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(poll_s)
    return None


def run_smoke(run_dir: Path, viewers: int = 3, publish_s: float = 6.0) -> SmokeReport:
    """Create → view → publish → HLS → stop; stops at the first step that fails."""
    try:
        endpoints = read_state(run_dir).endpoints
    except StackNotRunning as exc:
        raise TargetUnreachable(str(exc)) from None
    token = minter_for(run_dir=run_dir).mint()
    report = SmokeReport()
    api = httpx.Client(base_url=endpoints["api_base"], timeout=5.0,
                       headers={"Authorization": f"Bearer {token}"})
    probes: list[ViewerProbe] = []
    publisher: Publisher | None = None
    try:
        created = api.post("/api/v1/streams", json={"title": "smoke", "description": "smoke"})
        if not report.add("create stream", created.status_code == 201,
                          f"HTTP {created.status_code}"):
            return report
        stream = created.json()
        ws_url = f"{endpoints['ws_base']}/api/v1/streams/{stream['id']}/ws?token={token}"
        probes = [ViewerProbe(ws_url).connect() for _ in range(viewers)]
        established = sum(p.wait_for("connection_established") is not None for p in probes)
        if not report.add("viewers connected", established == viewers,
                          f"{established}/{viewers} got connection_established"):
            return report
        publisher = Publisher(endpoints["rtmp_url"], stream["rtmp_key"], ensure_clip(),
                              run_dir / "logs" / "smoke-ffmpeg.log")
        publisher.start()
        active_s = _wait(lambda: api.get(f"/api/v1/streams/{stream['id']}").json()["status"]
                         == "active", 10.0)
        if not report.add("stream active via RTMP", active_s is not None,
                          f"{active_s:.2f}s after ffmpeg start" if active_s else
                          f"not active in 10s; ffmpeg: {publisher.stderr_tail(2)}"):
            return report
        started = sum(p.wait_for("stream_started") is not None for p in probes)
        report.add("viewers saw stream_started", started == viewers, f"{started}/{viewers}")
        playlist = stream["hls_playlist_url"]
        hls_s = _wait(lambda: ".ts" in httpx.get(playlist, timeout=2.0).text, 10.0, 0.2)
        report.add("HLS playlist has segments", hls_s is not None,
                   f"{hls_s:.1f}s after active" if hls_s else "no segment in 10s")
        time.sleep(max(0.0, publish_s - (hls_s or 0.0)))
        publisher.stop()
        ended = [p.wait_for("stream_ended") for p in probes]
        reasons = {f.data.get("reason") for f in ended if f is not None}
        seen = sum(f is not None for f in ended)
        report.add("viewers saw stream_ended", seen == viewers and reasons == {"connection_lost"},
                   f"{seen}/{viewers}, reason {sorted(map(str, reasons))}")
        codes = [p.close_code for p in probes if p.closed.wait(3.0)]
        report.add("sockets closed with 1000", codes == [1000] * viewers, f"codes {codes}")
        status = api.get(f"/api/v1/streams/{stream['id']}").json()["status"]
        report.add("stream ended in the API", status == "ended", f"status {status}")
        return report
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"API at {endpoints['api_base']} failed: {exc}") from None
    finally:
        if publisher is not None:
            publisher.stop()
        for probe in probes:
            probe.close()
        api.close()
