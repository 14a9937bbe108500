"""A master with workers on the local stack: a local worker and one that joins share the run
with the single-process schema, and the joining one's clock, 50 ms ahead, makes the
push-latency line INCONCLUSIVE with the measured offset; a worker killed mid-run is named and
nothing PASSes; a worker that never joins ends the wait with who did; bad options start
nothing. (Across hosts: test_netns.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from analysis.load import read_table
from stack.roles import free_port
from tests.integration.test_run import check_results, connected_served
from tests.support import RunningStack, running_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningStack]:
    """One stack the module's runs reuse (a run leaves a stack it did not start running)."""
    with running_stack("distributed") as running:
        yield running


def start_run(stack: RunningStack, results: Path, duration: str, *extra: str,
              ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", str(ROOT / "scenarios/smoke.yaml"), "--run-dir", str(stack.run_dir),
         "--results", str(results), "--quiet", "--duration", duration, "--streams", "2",
         "--viewers-per-stream", "4", "--api-rate", "4", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_worker(master: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([*CLI, "worker", "--master", master], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **env})


def finished(proc: subprocess.Popen[str], timeout_s: float = 120) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out + err


def only_folder(results: Path) -> Path:
    folders = list(results.iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def document(folder: Path, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((folder / name).read_text())
    return found


def test_a_local_and_a_joining_worker_share_the_run_and_a_skewed_clock_is_caught(
        shared: RunningStack, tmp_path: Path) -> None:
    """One local worker and one that joins from "elsewhere" with its clock 50 ms ahead: the
    results have the single-process schema, viewers and API arrival clocks are spread over
    both, the master serves both workers' viewers as one series while it runs; the
    push-latency line is INCONCLUSIVE with the measured offset, one-clock lines are not."""
    master, port, done = f"127.0.0.1:{free_port()}", free_port(), threading.Event()
    worker = start_worker(master, tmp_path / "worker.log", NOVA_TEST_CLOCK_SKEW_MS="50")
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(connected_served, f"http://127.0.0.1:{port}/metrics", done)
        try:
            code, output = finished(start_run(
                shared, tmp_path / "r", "20s", "--viewers-per-stream", "8", "--api-rate", "10",
                "--workers", "1", "--expect-workers", "1", "--master-bind", master,
                "--metrics-port", str(port)))
        finally:
            done.set()
            worker.wait(timeout=30)
    assert code == 3, output  # INCONCLUSIVE
    assert f"nova-harness worker --master {master}" in output  # the address, printed
    assert max(served.result(), default=0) == 16, served.result()  # 2 streams x 8
    folder = only_folder(tmp_path / "r")
    check_results(folder, viewers=16, streams=2)
    seen = document(folder, "manifest.json")["distributed"]
    assert seen["master_address"] == master and seen["expected_workers"] == 1
    assert seen["local_workers"] == 1 and len(seen["workers"]) == 2
    (skewed,) = [w for w in seen["workers"] if w["pid"] == worker.pid]
    assert skewed["clock_rounds"] >= 1 and 45 <= skewed["clock_offset_ms"] <= 55, skewed
    (local,) = [w for w in seen["workers"] if w["pid"] != worker.pid]
    assert abs(local["clock_offset_ms"]) < 5, local
    samples = read_table(folder, "samples")
    viewer_workers = set(samples[samples.kind == "ws_connect"].worker)
    assert viewer_workers == {"worker-1", "worker-2"}
    # The open-model API rate (--api-rate 10) is shared by one arrival clock per worker.
    arrivals = samples[(samples.kind == "http") & samples.worker.isin(viewer_workers)]
    assert set(arrivals.worker) == viewer_workers
    per_s = (len(arrivals) - 1) / (arrivals.intended_ts.max() - arrivals.intended_ts.min())
    assert 7 <= per_s <= 13, per_s
    results = {r["id"]: r for r in document(folder, "verdict.json")["results"]}
    push = results["ws-push-latency-p95"]
    assert push["status"] == "INCONCLUSIVE", push
    assert re.search(rf"{skewed['name']}'s clock is \+(4[5-9]|5[0-5])\.\d ms "
                     r"\(± \d+\.\d ms\) off the master's", push["reason"]), push["reason"]
    assert results["ws-round-trip-p99"]["status"] == "PASS", results["ws-round-trip-p99"]
    events = read_table(folder, "events")
    assert set(events[events.type == "worker_clock"].user) == {"worker-1", "worker-2"}


def test_a_worker_killed_mid_run_is_named_and_nothing_passes(shared: RunningStack,
                                                             tmp_path: Path) -> None:
    run = start_run(shared, tmp_path, "20s", "--workers", "2")

    def victim() -> int | None:  # worker-2's pid once the hold has begun
        folders = list(tmp_path.iterdir())
        if not folders or not (folders[0] / "manifest.json").exists():
            return None
        manifest = document(folders[0], "manifest.json")
        if not any(stage["name"] == "hold" for stage in manifest["stages"]):
            return None
        pids = [w["pid"] for w in (manifest.get("distributed") or {}).get("workers", [])
                if w["name"] == "worker-2" and w["viewers_max"] > 0]
        return pids[0] if pids else None

    assert wait_for(lambda: victim() is not None, 60.0, poll_s=0.5), "the hold began"
    time.sleep(4)  # rows of both workers in the hold
    pid = victim()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a worker this test's run started
    code, output = finished(run)
    folder = only_folder(tmp_path)
    verdict = document(folder, "verdict.json")
    assert code == 3 and verdict["status"] == "INCONCLUSIVE", output
    assert not [r["id"] for r in verdict["results"] if r["status"] == "PASS"]
    assert any(p.startswith("worker-2 lost at +") and "held 4 viewers" in p
               for p in verdict["validity"]), verdict["validity"]
    lost = [w for w in document(folder, "manifest.json")["distributed"]["workers"]
            if w["name"] == "worker-2"]
    assert lost[0]["lost_at"] is not None and lost[0]["pid"] == pid
    samples = read_table(folder, "samples")
    assert {"worker-1", "worker-2"} <= set(samples.worker)  # its rows before the kill kept
    events = read_table(folder, "events")
    assert list(events[events.type == "worker_lost"].user) == ["worker-2"]


def test_a_worker_that_never_joins_ends_the_wait_naming_who_did(shared: RunningStack,
                                                                tmp_path: Path) -> None:
    code, output = finished(start_run(shared, tmp_path, "16s", "--workers", "1",
                                      "--expect-workers", "1", "--join-timeout", "10"))
    assert code == 4, output
    assert "1 of 2 workers joined within 10 s (joined: worker-1 from " in output
    manifest = document(only_folder(tmp_path), "manifest.json")
    assert "streams" not in manifest or not manifest["streams"]  # nothing was created


def test_bad_worker_options_start_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "run", str(ROOT / "scenarios/smoke.yaml"), "--results", str(tmp_path / "r"),
         "--run-dir", str(tmp_path / "stack"), "--master-bind", "192.0.2.7:5557",
         "--expect-workers", "-1", "--join-timeout", "0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    for problem in ("--expect-workers -1: must be between 0 and 1000",
                    "--join-timeout 0: must be more than 0 s",
                    "--master-bind 192.0.2.7:5557: cannot listen there"):
        assert problem in result.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "stack").exists()
