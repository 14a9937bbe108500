"""Soak mode on the local stack, shortened (docs/soak.md): cycles, interim verdict and status
file; a SIGKILL mid-soak takes its publishers with it and leaves a folder `analyze` judges;
`soak --resume` continues it into the same folder with the gap recorded; the healthy service
passes the soak verdicts and a service that keeps memory per viewer fails them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from analysis.load import read_table
from tests.support import RunningStack, running_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
SOAK_VERDICTS = ("memory-no-growth", "memory-cleanup-after-cycles", "latency-no-drift")


def scenario(folder: Path, instances: int) -> Path:
    path = folder / "soak-short.yaml"
    path.write_text(json.dumps({
        "name": "soak-short", "stack": {"instances": instances},
        "load": {"ramp": "5s", "hold": "150s", "ramp_down": "5s", "warmup": "15s",
                 "cooldown": "5s"},
        "streams": {"count": 2}, "viewers": {"per_stream": 10, "info_interval_s": 2},
        "api_clients": {"rate_per_s": 5},
        "soak": {"cycle_viewers": 40, "cycle_start": "15s", "cycle_connect": "5s",
                 "cycle_hold": "15s", "cycle_idle": "20s", "report_every": "60s"},
        "thresholds": str(ROOT / "scenarios/thresholds/soak.yaml")}))
    return path


def statuses(folder: Path) -> dict[str, str]:
    verdict = json.loads((folder / "verdict.json").read_text())
    return {r["id"]: r["status"] for r in verdict["results"]}


def test_killed_soak_is_judged_then_resumed(stack: RunningStack, tmp_path: Path) -> None:
    command = [*CLI, "soak", str(scenario(tmp_path, 2)), "--run-dir", str(stack.run_dir),
               "--results", str(tmp_path / "results"), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def far_enough() -> bool:
            found = list((tmp_path / "results").glob("*/status.json"))
            if not found:
                return False
            status = json.loads(found[0].read_text())
            return bool(status["cycles_done"] >= 1 and status["last_interim"])
        assert wait_for(far_enough, 150.0, 1.0)
        folder = next((tmp_path / "results").iterdir())
        publishers = [b["pid"] for b in json.loads((folder / "broadcasters.json").read_text())]
        os.kill(proc.pid, signal.SIGKILL)  # the harness we started, by PID
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Its ffmpeg publishers die with it (PR_SET_PDEATHSIG): no load outlives the run.
    assert wait_for(lambda: not any(psutil.pid_exists(p) for p in publishers if p), 10.0)
    assert json.loads((folder / "interim" / "verdict.json").read_text())["status"]
    judged = subprocess.run([*CLI, "analyze", str(folder)], capture_output=True, text=True,
                            timeout=120)
    assert "verdict:" in judged.stdout and (folder / "verdict.json").exists(), judged.stdout
    before = read_table(folder, "events")
    cycles_before = int(before[before.type == "cycle_started"].value.max())

    resumed = subprocess.run([*CLI, "soak", "--resume", str(folder), "--run-dir",
                              str(stack.run_dir), "--quiet"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout and "gap of" in resumed.stdout
    assert list((tmp_path / "results").iterdir()) == [folder]  # the same folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["gaps"]) == 1
    assert [s["name"] for s in manifest["stages"]].count("ramp") == 2
    events = read_table(folder, "events")
    assert (events.type == "run_resumed").sum() == 1
    assert events[events.type == "cycle_started"].value.max() > cycles_before
    assert {statuses(folder)[i] for i in SOAK_VERDICTS} == {"PASS"}
    assert (folder / "charts" / "soak.png").exists()
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"


def test_a_service_that_keeps_memory_per_viewer_fails_the_soak(tmp_path: Path) -> None:
    leak = {"NOVA_BROKEN_LEAK_PER_VIEWER_BYTES": str(512 * 1024)}
    with running_stack("soak-leak", service_env=leak) as leaking:
        started = time.monotonic()
        result = subprocess.run([*CLI, "soak", str(scenario(tmp_path, 1)), "--run-dir",
                                 str(leaking.run_dir), "--results", str(tmp_path / "r"),
                                 "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    found = statuses(next((tmp_path / "r").iterdir()))
    assert found["memory-no-growth"] == "FAIL", found
    assert found["memory-cleanup-after-cycles"] == "FAIL", found
    assert time.monotonic() - started < 240
