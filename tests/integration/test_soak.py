"""Soak mode on the local stack, shortened (docs/soak.md): cycles, interim verdict and status
file; a SIGKILL mid-soak takes its publishers with it, leaves a status that reads as crashed and
a folder `analyze` judges; `soak --resume` continues it into the same folder with the gap
recorded and named, and stops the stack its killed run started; a few minutes are too short to
judge a trend (INCONCLUSIVE, never FAIL on a healthy service), while the cycles are judged, and
a service that keeps memory per viewer fails them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from analysis.load import read_table
from harness.auth.minting import TokenMinter
from harness.config.profile import load_profile
from harness.suites.base import Check, CheckResult, Target, run_check
from harness.suites.monitoring import grafana_dashboard
from stack.roles import free_port
from stack.state import read_state, supervisor_alive
from tests import dashboard
from tests.integration.grafana_standin import TOKEN, grafana_standin
from tests.support import new_run_dir, running_prometheus, running_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
TREND_VERDICTS = ("memory-no-growth", "latency-no-drift")


CYCLES = {"cycle_viewers": 40, "cycle_start": "15s", "cycle_connect": "5s", "cycle_hold": "15s",
          "cycle_idle": "20s", "report_every": "60s"}


def scenario(folder: Path, instances: int, hold: str = "150s", hls_share: float = 0.0,
             **cycles: str) -> Path:
    """A soak of minutes: the first cycle connects 15 s into the hold and ends (idle) 40 s
    later; an interim verdict every 60 s (`cycles` changes any of that)."""
    path = folder / "soak-short.yaml"
    path.write_text(json.dumps({
        "name": "soak-short", "stack": {"instances": instances},
        "load": {"ramp": "5s", "hold": hold, "ramp_down": "5s", "warmup": "15s",
                 "cooldown": "5s"},
        "streams": {"count": 2},
        "viewers": {"per_stream": 10, "info_interval_s": 2, "hls_share": hls_share},
        "api_clients": {"rate_per_s": 5},
        "soak": {**CYCLES, **cycles},
        "thresholds": str(ROOT / "scenarios/thresholds/soak.yaml")}))
    return path


def statuses(folder: Path) -> dict[str, str]:
    verdict = json.loads((folder / "verdict.json").read_text())
    return {r["id"]: r["status"] for r in verdict["results"]}


def instant(prometheus: str, query: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = httpx.get(f"{prometheus}/api/v1/query",
                                                params={"query": query}).json()["data"]["result"]
    return result


def has_data(prometheus: str, query: str, since: float) -> bool:
    """Whether `query` gave a number (not NaN) at some second since `since`."""
    answer = httpx.get(f"{prometheus}/api/v1/query_range", params={
        "query": query, "start": since, "end": time.time(), "step": 2}).json()
    assert answer["status"] == "success", (query, answer)
    return any(value not in ("NaN", "+Inf", "-Inf") for series in answer["data"]["result"]
               for _, value in series["values"])


def grafana_line(grafana: str) -> CheckResult:
    """The verify suite's Grafana dashboard line against `grafana`."""
    target = Target("http://127.0.0.1:9", "ws://127.0.0.1:9", "rtmp://127.0.0.1:9/live",
                    "http://127.0.0.1:9", "http://127.0.0.1:9/metrics", load_profile("nova-doc"),
                    TokenMinter("HS256", "x" * 32), grafana_url=grafana, grafana_token=TOKEN)
    return run_check(target, Check("verify", "grafana-dashboard", "§5/§8", grafana_dashboard))


def test_killed_soak_is_judged_then_resumed(tmp_path: Path) -> None:
    """The soak starts its own stack (an empty run folder); killed, resumed and finished, it
    leaves no process behind. While it runs it serves its series to a real Prometheus, and
    every panel of the Grafana dashboard has data from them."""
    stack_dir, metrics_port = new_run_dir("soak-resume"), free_port()
    # Killed after the first interim verdict (30 s into the hold) and the first cycle (35 s),
    # resumed for the ~40 s left: short cycles so that each part has one.
    soak = scenario(tmp_path, 2, hold="75s", hls_share=0.2, cycle_start="5s",
                    cycle_hold="10s", cycle_idle="15s", report_every="30s")
    command = [*CLI, "soak", str(soak), "--run-dir",
               str(stack_dir), "--results", str(tmp_path / "results"), "--quiet",
               "--metrics-port", str(metrics_port)]
    with running_prometheus(tmp_path / "prometheus",
                            {"nova-harness": [f"127.0.0.1:{metrics_port}"]}) as prometheus:
        started = time.time()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            def far_enough() -> bool:
                found = list((tmp_path / "results").glob("*/status.json"))
                if not found:
                    return False
                status = json.loads(found[0].read_text())
                return bool(status["cycles_done"] >= 1 and status["last_interim"]) and \
                    bool(instant(prometheus, "nova_harness_interim_verdict"))
            if not wait_for(far_enough, 150.0, 1.0):
                proc.kill()
                output = proc.communicate(timeout=10)[0].decode(errors="replace")
                raise AssertionError(f"the soak did not get that far:\n{output[-3000:]}")
            # Through Grafana's API (a stand-in forwarding to this Prometheus): the §5/§8
            # dashboard line passes while the soak runs.
            with grafana_standin(prometheus) as grafana:
                line = grafana_line(grafana)
            assert line.status == "PASS", line.reason
            folder = next((tmp_path / "results").iterdir())
            publishers = [b["pid"] for b in
                          json.loads((folder / "broadcasters.json").read_text())]
            os.kill(proc.pid, signal.SIGKILL)  # the harness we started, by PID
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        empty = [f"{title}: {expr}" for title, expr in dashboard.queries(dashboard.load())
                 if not has_data(prometheus, dashboard.expand(expr, folder.name), started)]
        assert not empty, "panels without data:\n" + "\n".join(empty)
    # Its ffmpeg publishers die with it (PR_SET_PDEATHSIG): no load outlives the run.
    assert wait_for(lambda: not any(psutil.pid_exists(p) for p in publishers if p), 10.0)
    assert json.loads((folder / "interim" / "verdict.json").read_text())["status"]
    # The file still says running; its writer is gone, so a reader is told crashed.
    assert json.loads((folder / "status.json").read_text())["status"] == "running"
    told = subprocess.run([*CLI, "status", str(folder)], capture_output=True, text=True,
                          timeout=60)
    assert json.loads(told.stdout)["status"] == "crashed", told.stdout + told.stderr
    judged = subprocess.run([*CLI, "analyze", str(folder)], capture_output=True, text=True,
                            timeout=120)
    assert "verdict:" in judged.stdout and (folder / "verdict.json").exists(), judged.stdout
    assert "run crashed" in (folder / "summary.md").read_text()
    before = read_table(folder, "events")
    done_before = int(before[before.type == "cycle_idle_end"].value.max())

    resumed = subprocess.run([*CLI, "soak", "--resume", str(folder), "--run-dir",
                              str(stack_dir), "--quiet"], capture_output=True, text=True,
                             timeout=300)
    try:
        # INCONCLUSIVE (exit 3): the trends cannot be judged on minutes.
        assert resumed.returncode == 3, resumed.stdout + resumed.stderr
        # The resumed run owned the stack its killed run started, and stopped it.
        assert not supervisor_alive(read_state(stack_dir))
    finally:
        subprocess.run([*CLI, "stack", "down", "--run-dir", str(stack_dir)],
                       capture_output=True, timeout=60)
    assert "resuming" in resumed.stdout and "gap of" in resumed.stdout
    assert list((tmp_path / "results").iterdir()) == [folder]  # the same folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["gaps"]) == 1
    assert [s["name"] for s in manifest["stages"]].count("ramp") == 2
    events = read_table(folder, "events")
    assert (events.type == "run_resumed").sum() == 1
    # The resumed run goes on cycling: the cycle the kill cut short is run again, numbered
    # after the last one completed.
    resumed_cycles = events[(events.type == "cycle_started") &
                            (events.ts > manifest["gaps"][0]["end"])]
    assert not resumed_cycles.empty and resumed_cycles.value.min() == done_before + 1
    found = statuses(folder)
    # Minutes of data: a trend cannot be told from warm-up. Inconclusive, with the reason.
    assert {found[i] for i in TREND_VERDICTS} == {"INCONCLUSIVE"}, found
    assert found["memory-cleanup-after-cycles"] == "PASS", found
    verdict = json.loads((folder / "verdict.json").read_text())
    memory = next(r for r in verdict["results"] if r["id"] == "memory-no-growth")
    assert "too little settled time to fit a memory trend" in memory["reason"]
    assert any("resumed" in note for note in verdict["notes"])
    assert "resumed" in (folder / "summary.md").read_text()
    assert (folder / "charts" / "soak.png").exists()
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and status["segments"] == 2
    assert status["elapsed_s"] >= 0.9 * status["planned_s"]


@pytest.mark.slow  # the verdict's FAIL on synthetic runs: tests/unit/test_trends.py
def test_a_service_that_keeps_memory_per_viewer_fails_the_soak(tmp_path: Path) -> None:
    leak = {"NOVA_BROKEN_LEAK_PER_VIEWER_BYTES": str(512 * 1024)}
    with running_stack("soak-leak", service_env=leak) as leaking:
        # One short cycle is enough to show memory that never came back.
        short = scenario(tmp_path, 1, hold="40s", cycle_start="5s", cycle_hold="10s",
                         cycle_idle="15s")
        result = subprocess.run([*CLI, "soak", str(short), "--run-dir", str(leaking.run_dir),
                                 "--results", str(tmp_path / "r"), "--quiet"],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    found = statuses(next((tmp_path / "r").iterdir()))
    # Minutes are too short for a trend; the cycles show the memory that never came back.
    assert found["memory-no-growth"] == "INCONCLUSIVE", found
    assert found["memory-cleanup-after-cycles"] == "FAIL", found
