"""A master with workers on the local stack: a local worker and one that joins share the run;
the joining one's clock, 50 ms ahead, makes the push-latency line INCONCLUSIVE with the
measured offset, and the local one, killed mid-run, is named and nothing PASSes; a worker
that never joins ends the wait with who did; bad options start nothing. (The results schema
with workers, across hosts: test_netns.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from analysis.load import read_table
from stack.roles import free_port
from tests.integration.test_run import connected_served
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


def manifest_when(results: Path, ready: Callable[[dict[str, Any]], bool]
                  ) -> dict[str, Any] | None:
    """The running run's manifest once `ready` holds for it."""
    folders = list(results.iterdir()) if results.exists() else []
    if not folders or not (folders[0] / "manifest.json").exists():
        return None
    manifest = document(folders[0], "manifest.json")
    return manifest if ready(manifest) else None


def holding(manifest: dict[str, Any]) -> bool:
    """The hold has begun and both workers hold viewers."""
    workers = (manifest.get("distributed") or {}).get("workers", [])
    return any(stage["name"] == "hold" for stage in manifest["stages"]) and \
        len(workers) == 2 and all(w["viewers_max"] > 0 for w in workers)


def test_two_workers_one_skewed_one_killed(shared: RunningStack, tmp_path: Path) -> None:
    """A local worker and one that joins from "elsewhere" with its clock 50 ms ahead share
    the run: viewers and API arrival clocks spread over both, the master serving both
    workers' viewers as one series. Then the local one is killed mid-run. The push-latency
    line is INCONCLUSIVE with the measured offset; the lost worker is named and nothing
    PASSes; what it shipped before is kept."""
    master, port, done = f"127.0.0.1:{free_port()}", free_port(), threading.Event()
    joiner = start_worker(master, tmp_path / "worker.log", NOVA_TEST_CLOCK_SKEW_MS="50")
    results = tmp_path / "r"
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(connected_served, f"http://127.0.0.1:{port}/metrics", done)
        try:
            run = start_run(shared, results, "22s", "--viewers-per-stream", "8",
                            "--api-rate", "10", "--workers", "1", "--expect-workers", "1",
                            "--master-bind", master, "--metrics-port", str(port))
            assert wait_for(lambda: manifest_when(results, holding) is not None, 60.0,
                            poll_s=0.5), "the hold began with both workers"
            time.sleep(4)  # rows of both workers in the hold
            manifest = manifest_when(results, holding)
            assert manifest is not None
            (victim,) = [w for w in manifest["distributed"]["workers"]
                         if w["pid"] != joiner.pid]
            os.kill(victim["pid"], signal.SIGKILL)  # the local worker this test's run started
            code, output = finished(run)
        finally:
            done.set()
            joiner.wait(timeout=30)
    assert code == 3, output  # INCONCLUSIVE
    assert f"nova-harness worker --master {master}" in output  # the address, printed
    assert max(served.result(), default=0) == 16, served.result()  # 2 streams x 8
    folder = only_folder(results)
    seen = document(folder, "manifest.json")["distributed"]
    assert seen["master_address"] == master and seen["expected_workers"] == 1
    assert seen["local_workers"] == 1 and len(seen["workers"]) == 2
    (skewed,) = [w for w in seen["workers"] if w["pid"] == joiner.pid]
    assert skewed["clock_rounds"] >= 1 and 45 <= skewed["clock_offset_ms"] <= 55, skewed
    assert skewed["validity"]["saturated"] is False  # its generator health reached the master
    (lost,) = [w for w in seen["workers"] if w["pid"] == victim["pid"]]
    assert lost["lost_at"] is not None and abs(lost["clock_offset_ms"]) < 5, lost
    samples = read_table(folder, "samples")
    viewer_workers = set(samples[samples.kind == "ws_connect"].worker)
    assert viewer_workers == {"worker-1", "worker-2"}  # the lost one's rows are kept
    # The open-model API rate (--api-rate 10) is shared by one arrival clock per worker.
    arrivals = samples[(samples.kind == "http") & samples.worker.isin(viewer_workers)]
    assert set(arrivals.worker) == viewer_workers
    verdict = document(folder, "verdict.json")
    results_by_id = {r["id"]: r for r in verdict["results"]}
    push = results_by_id["ws-push-latency-p95"]
    assert push["status"] == "INCONCLUSIVE", push
    assert re.search(rf"{skewed['name']}'s clock is \+(4[5-9]|5[0-5])\.\d ms "
                     r"\(± \d+\.\d ms\) off the master's", push["reason"]), push["reason"]
    assert not [r["id"] for r in verdict["results"] if r["status"] == "PASS"]
    assert f"{lost['name']} lost at +" in results_by_id["ws-round-trip-p99"]["reason"]
    assert any(p.startswith(f"{lost['name']} lost at +") and "held 8 viewers" in p
               for p in verdict["validity"]), verdict["validity"]
    events = read_table(folder, "events")
    assert set(events[events.type == "worker_clock"].user) == viewer_workers
    assert list(events[events.type == "worker_lost"].user) == [lost["name"]]
    log = (tmp_path / "worker.log").read_text()
    assert "eyJ" not in log and "eyJ" not in json.dumps(seen)  # tokens stay on the channel


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
