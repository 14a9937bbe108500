"""`nova-harness run` end to end on the local stack: results folder complete and readable, every
viewer connected and saw the stream start; Ctrl-C aborts cleanly and keeps what was recorded.
(The same schema with workers: test_distributed.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from analysis.load import read_table
from harness.auth.keys import minter_for
from harness.auth.minting import TokenMinter
from records.schema import TABLES
from tests.support import new_run_dir, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]


def read_manifest(folder: Path) -> dict[str, Any]:
    """manifest.json as written (extras such as `rows` and `broadcasters` included)."""
    document: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return document


def run_cli(stack_dir: Path, results: Path, *extra: str,
            scenario: Path = ROOT / "scenarios/smoke.yaml", env: dict[str, str] | None = None,
            ) -> tuple[subprocess.CompletedProcess[str], Path]:
    result = subprocess.run(
        [*CLI, "run", str(scenario), "--run-dir", str(stack_dir),
         "--results", str(results), "--quiet", "--duration", "20s", "--viewers-per-stream", "8",
         "--api-rate", "10",
         "--streams", "2", *extra], capture_output=True, text=True, timeout=240,
        env={**os.environ, **(env or {})})
    folders = list(results.iterdir())
    assert len(folders) == 1, result.stdout + result.stderr
    return result, folders[0]


def smoke_with(tmp_path: Path, **fields: object) -> Path:
    """scenarios/smoke.yaml with `fields` set, written where a test may change it."""
    scenario = yaml.safe_load((ROOT / "scenarios/smoke.yaml").read_text())
    scenario["thresholds"] = str(ROOT / "scenarios" / scenario["thresholds"])
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({**scenario, **fields}))
    return path


def check_results(folder: Path, viewers: int, streams: int) -> None:
    manifest = read_manifest(folder)
    assert manifest["status"] == "completed"
    assert manifest["planned"] == {**manifest["planned"], "viewers": viewers, "streams": streams}
    assert [s["name"] for s in manifest["stages"]] == ["ramp", "hold", "ramp_down"]
    assert [p["name"] for p in manifest["phases"]] == ["warmup", "steady", "cooldown"]
    assert manifest["broadcasters"] == ["stopped"] * streams
    assert manifest["validity"]["saturated"] is False
    assert manifest["write_errors"] == []
    assert not any(p.name.endswith(".tmp") for p in folder.rglob("*"))
    samples, events = read_table(folder, "samples"), read_table(folder, "events")
    assert list(samples.columns) == TABLES["samples"].names
    assert manifest["rows"]["samples"] == len(samples)
    established = samples[(samples.kind == "ws_event") &
                          (samples.name == "connection_established")]
    assert established.user.nunique() == viewers
    assert events[events.type == "stream_active_seen"].user.nunique() == viewers
    ended = events[events.type == "stream_ended_seen"]
    # Publishers stop at ramp-down: the RTMP done webhook ends every stream.
    assert ended.user.nunique() == viewers and set(ended.detail) == {"connection_lost"}
    activations = samples[samples.kind == "rtmp_publish"]
    assert len(activations) == streams and activations.ok.all()
    assert (activations.latency_ms < 3000).all()
    rtt = samples[samples.kind == "ws_rtt"]
    assert len(rtt) > viewers and rtt.ok.all()
    http = samples[samples.kind == "http"]
    assert len(http) > 10 and http.ok.mean() == 1.0
    assert (http.intended_ts <= http.ts + 0.001).all()
    resources = read_table(folder, "resources")
    assert {"api", "postgres", "redis", "nginx", "harness", "system"} <= set(resources.role)
    assert (resources[resources.role == "postgres"].rss_bytes > 0).all()
    metrics = read_table(folder, "metrics")
    assert "nova_streaming_active_streams" in set(metrics.series)
    assert {"pg_connections", "redis_connected_clients", "nginx_rtmp_streams"} <= \
        set(metrics.series)
    assert not any(s.endswith("_poll_failed") for s in set(metrics.series))
    assert {"db_active_streams", "db_open_viewer_sessions"} <= set(metrics.series)
    # What the generator's memory is made of, beside its PSS (harness/monitor/selfwatch.py).
    heap = metrics[metrics.source == "harness"]
    assert (heap[heap.series == "python_allocated_blocks"].value > 10_000).all()
    assert len(heap[heap.series == "arrow_allocated_bytes"]) >= 3
    assert manifest["host"]["arrow_pool"] == "jemalloc"
    readbacks = events[events.type == "stream_readback"]
    assert len(readbacks) == streams and all('"status": "ended"' in d for d in readbacks.detail)
    secret_free = json.dumps(manifest)
    assert "Bearer" not in secret_free and "eyJ" not in secret_free  # no token leaked


def test_run_single_process_then_analyze(stack_dir: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"  # no cached clip, as on a fresh machine
    # The API clients also create streams and delete them (with their creator's token).
    mix = {"list_active": 3, "get": 3, "create": 1, "delete": 1, "metrics": 1, "health": 1}
    scenario = smoke_with(tmp_path, api_clients={"rate_per_s": 10, "mix": mix})
    result, folder = run_cli(stack_dir, tmp_path / "results", scenario=scenario,
                             env={"NOVA_CLIP_CACHE": str(clips)})
    assert result.returncode == 0, result.stdout + result.stderr
    # The clip was encoded before the load began, not in the middle of the measured run.
    (clip,) = clips.glob("clip-*.flv")
    assert clip.stat().st_mtime < read_manifest(folder)["stages"][0]["start"]
    assert "run completed: 16/16 viewers connected" in result.stdout
    assert "verdict: PASS" in result.stdout and "report.html" in result.stdout
    check_results(folder, viewers=16, streams=2)
    calls = read_table(folder, "samples").query("kind == 'http'")
    for name in ("create", "delete"):
        made = calls[calls.name == name]
        assert len(made) >= 3 and made.ok.all(), made[["status", "error"]]
    first = json.loads((folder / "verdict.json").read_text())
    again = subprocess.run([*CLI, "analyze", str(folder)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "verdict: PASS" in again.stdout
    second = json.loads((folder / "verdict.json").read_text())
    assert [(r["id"], r["status"], r["observed"]) for r in first["results"]] == \
        [(r["id"], r["status"], r["observed"]) for r in second["results"]]
    # A copy truncated mid-run (manifest still `running`, later parts gone) still analyses.
    copy = tmp_path / "truncated"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    cut = manifest["stages"][1]["start"] + 3
    manifest.update(status="running", phases=[], stages=manifest["stages"][:2])
    manifest["stages"][1]["end"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))
    import pyarrow.parquet as pq

    for table in ("samples", "events", "resources", "metrics"):
        for part in (copy / table).glob("*.parquet"):
            data = pq.read_table(part)
            pq.write_table(data.filter(data.column("ts").to_numpy() < cut), part)
    truncated = subprocess.run([*CLI, "analyze", str(copy)], capture_output=True, text=True,
                               timeout=120)
    assert truncated.returncode in (0, 3), truncated.stdout + truncated.stderr
    assert "verdict:" in truncated.stdout and (copy / "report.html").exists()


def connected_served(url: str, done: threading.Event) -> list[float]:
    """Every total of `nova_harness_viewers_connected` the endpoint served until `done`."""
    totals: list[float] = []
    while not done.wait(0.5):
        try:
            text = httpx.get(url, timeout=2).text
        except httpx.HTTPError:
            continue  # not serving yet, or no longer
        totals.append(sum(sample.value for family in text_string_to_metric_families(text)
                          for sample in family.samples
                          if sample.name == "nova_harness_viewers_connected"))
    return totals


def test_ctrl_c_aborts_and_keeps_results(stack_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "run", str(ROOT / "scenarios/smoke.yaml"), "--run-dir", str(stack_dir),
         "--results", str(tmp_path), "--quiet", "--duration", "60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def loading() -> bool:  # the load has begun and some rows are on disk
        folders = list(tmp_path.iterdir())
        return bool(folders) and (folders[0] / "status.json").exists() and \
            any((folders[0] / "samples").glob("part-*.parquet"))
    assert wait_for(loading, 60.0, poll_s=0.5), "the run started its load"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    folder = next(tmp_path.iterdir())
    manifest = read_manifest(folder)
    assert manifest["status"] == "aborted" and manifest["stop_reason"] == "interrupted"
    assert manifest["ended_at"] - manifest["started_at"] < 40
    assert not read_table(folder, "samples").empty


def test_bad_scenario_starts_nothing(stack_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nviewers: {per_stream: -3}\nload: {hold: forever}\n")
    result = subprocess.run([*CLI, "run", str(bad), "--results", str(tmp_path / "r"),
                             "--run-dir", str(stack_dir), "--workers", "99"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "viewers.per_stream" in result.stderr and "load.hold" in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_token_file_that_expires_mid_run_starts_nothing(stack_dir: Path,
                                                         tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    minter = TokenMinter("HS256", "throwaway-secret-0123456789abcdefghij")
    tokens.write_text(minter.mint(expires_in_s=1800) + "\n")
    scenario = smoke_with(tmp_path, auth={"mode": "token_file", "token_file": str(tokens)})
    result = subprocess.run([*CLI, "run", str(scenario), "--results", str(tmp_path / "r"),
                             "--run-dir", str(stack_dir), "--duration", "2h"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "1 of 1 tokens expire before the run ends" in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_running_stack_without_the_scenarios_service_setting_is_refused(
        stack_dir: Path, tmp_path: Path) -> None:
    from stack import local
    from stack.roles import StackOptions

    scenario = smoke_with(tmp_path, stack={"service_env": {"NOVA_BROKEN_VIEWER_COUNT_OFFSET": 1}})
    local.up(StackOptions(run_dir=stack_dir))
    try:
        refused = subprocess.run([*CLI, "run", str(scenario), "--run-dir", str(stack_dir),
                                  "--results", str(tmp_path / "refused"), "--quiet"],
                                 capture_output=True, text=True, timeout=60)
    finally:
        local.down(stack_dir)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ("stack.service_env.NOVA_BROKEN_VIEWER_COUNT_OFFSET: the stack already running "
            "has it unset, not '1'") in refused.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_wrong_viewer_count_fails_the_consistency_check(tmp_path: Path) -> None:
    """A target that reports count + 1 (NOVA_BROKEN_VIEWER_COUNT_OFFSET, set by the scenario's
    stack.service_env, which the run's own stack gets) fails §14 on each source that reports
    the count, and only there. (The default suite has the same wrong count fail the e2e check
    suite, tests/integration/test_checks.py, and §14 on synthetic folders.)"""
    from stack import local

    broken = new_run_dir("broken-count")
    scenario = smoke_with(tmp_path, stack={"service_env": {"NOVA_BROKEN_VIEWER_COUNT_OFFSET": 1}})
    try:
        result, folder = run_cli(broken, tmp_path / "results", scenario=scenario)
        assert result.returncode == 1, result.stdout + result.stderr
        assert re.search(r"^  FAIL +viewer-count-consistent: ", result.stdout, re.M), \
            result.stdout
        verdict = json.loads((folder / "verdict.json").read_text())
        statuses = {r["id"]: (r["status"], r["observed"]) for r in verdict["results"]}
        for told in ("viewer-count-consistent", "viewer-count-api", "viewer-count-metrics"):
            assert statuses[told] == ("FAIL", 0.0), told
        assert statuses["viewer-count-converges"][0] == "FAIL"
        # The database's sessions are right: each source is judged on its own.
        assert statuses["viewer-count-database"] == ("PASS", 1.0)
        assert verdict["status"] == "FAIL"
        assert read_manifest(folder)["scenario"]["stack"]["service_env"] == \
            {"NOVA_BROKEN_VIEWER_COUNT_OFFSET": "1"}
    finally:
        local.down(broken)
        shutil.rmtree(broken, ignore_errors=True)


USERS = {"ann@example.com": "pw-ann-7f3a", "bob@example.com": "pw-bob-91c2"}


class LoginServer:
    """A real login endpoint on loopback: POST /auth/login {email, password} answers
    {"data": {"access_token": JWT}} minted with the local stack's key, 401 otherwise."""

    def __init__(self, stack_dir: Path) -> None:
        self.stack_dir, self.logins, self.port = stack_dir, 0, 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if USERS.get(body.get("email")) != body.get("password"):
            return web.json_response({"error": "UNAUTHORIZED"}, status=401)
        self.logins += 1
        token = minter_for(run_dir=self.stack_dir).mint(expires_in_s=3600)
        return web.json_response({"data": {"access_token": token}})

    def serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/auth/login", self.login)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())


@pytest.fixture
def login_server(stack_dir: Path) -> Iterator[LoginServer]:
    server = LoginServer(stack_dir)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    yield server
    server.loop.call_soon_threadsafe(server.loop.stop)
    thread.join(10)


def login_scenario(tmp_path: Path, port: int, credentials: str) -> Path:
    (tmp_path / "users.txt").write_text(credentials)
    return smoke_with(tmp_path, auth={"mode": "login", "login": {
        "url": f"http://127.0.0.1:{port}/auth/login",
        "credentials_file": str(tmp_path / "users.txt"), "username_field": "email",
        "token_field": "data.access_token"}})


def test_viewers_log_in_and_play_hls_at_the_live_edge(stack_dir: Path, tmp_path: Path,
                                                      login_server: LoginServer) -> None:
    """Tokens from the target's login endpoint (one login per credential, no password
    written anywhere), carried by viewers that all play HLS at the live edge."""
    users = "".join(f"{name}:{password}\n" for name, password in USERS.items())
    scenario = login_scenario(tmp_path, login_server.port, "# team accounts\n" + users)
    result = subprocess.run([*CLI, "run", str(scenario), "--results", str(tmp_path / "r"),
                             "--run-dir", str(stack_dir), "--quiet", "--duration", "20s",
                             "--viewers-per-stream", "4", "--hls-share", "1", "--api-rate", "10"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run completed: 4/4 viewers connected" in result.stdout
    assert login_server.logins == 2  # one per credential, not one per viewer or per call
    folder = next((tmp_path / "r").iterdir())
    written = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    for password in USERS.values():
        assert password.encode() not in written
        assert password not in result.stdout + result.stderr
    samples = read_table(folder, "samples")
    startup = samples[samples.kind == "hls_startup"]
    assert startup.user.nunique() == 4 and (startup.latency_ms < 8000).all()
    segments = samples[samples.kind == "hls_segment"]
    assert len(segments) >= 8 and segments.ok.all() and (segments.bytes > 1000).all()
    playlists = samples[samples.kind == "hls_playlist"]
    assert playlists.ok.all(), playlists[~playlists.ok][["name", "status", "error"]]
    assert (playlists[playlists.name == "hls_playlist"].status == 200).all()
    lag = samples[samples.kind == "hls_live_lag"]
    assert not lag.empty and lag.latency_ms.median() < 12_000
    # Segments are named by their start in epoch ms; each new one gives a delay, measured to
    # within half the 1 s playlist poll.
    delays = samples[samples.kind == "hls_ingest_delay"]
    assert len(delays) >= 8 and delays.user.nunique() == 4
    assert delays.latency_ms.between(-1000, 3000).all(), delays.latency_ms.describe()


def test_a_failed_login_names_the_line_and_starts_nothing(stack_dir: Path, tmp_path: Path,
                                                          login_server: LoginServer) -> None:
    scenario = login_scenario(tmp_path, login_server.port,
                              "ann@example.com:pw-ann-7f3a\nbob@example.com:wrong-password\n")
    result = subprocess.run([*CLI, "run", str(scenario), "--results", str(tmp_path / "r"),
                             "--run-dir", str(stack_dir), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "line 2 (bob@example.com)" in result.stderr and "answered 401" in result.stderr
    assert "wrong-password" not in result.stderr
    assert not (tmp_path / "r").exists()
