"""Across hosts on one machine: the reference stack listens on a "target" namespace's address,
the master runs in another, two workers in two more. The viewers split across the workers,
every row lands in the master's one results folder, and the verdict is the one a
single-process run of the same scenario gets. Load goes only to the target namespace's
address, which the scenario allow-lists by name; without that the run is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.load import read_table
from tests.integration.test_run import check_results
from tests.netns import Hosts, Unavailable, made_hosts
from tests.support import new_run_dir

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
MASTER_PORT = 5557  # the master's namespace is new: nothing else listens there


@pytest.fixture(scope="module")
def net() -> Iterator[Hosts]:
    try:
        hosts = made_hosts(["target", "master", "worker-a", "worker-b"])
    except Unavailable as exc:
        pytest.skip(f"network namespaces cannot be made here: {exc}")
    try:
        yield hosts
    finally:
        hosts.remove()


@pytest.fixture(scope="module")
def target(net: Hosts) -> Iterator[Path]:
    """The reference stack, every listener on the target namespace's address."""
    run_dir = new_run_dir("netns")
    up = subprocess.run(net.command("target", [*CLI, "stack", "up", "--run-dir", str(run_dir),
                                               "--listen", net.address("target")]),
                        capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield run_dir
    finally:
        subprocess.run([*CLI, "stack", "down", "--run-dir", str(run_dir)], capture_output=True,
                       timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)


def scenario(folder: Path, allow: list[str]) -> Path:
    document = {
        "name": "netns", "target": {"stack": "local", "allow_hosts": allow},
        "load": {"ramp": "5s", "hold": "7s", "ramp_down": "5s", "warmup": "3s",
                 "cooldown": "3s"},
        "streams": {"count": 2},
        "viewers": {"per_stream": 4, "info_interval_s": 2, "hls_share": 0.25},
        # 10/s: the metrics line's 3 samples in the steady part are then all but certain.
        "api_clients": {"rate_per_s": 10},
        "thresholds": str(ROOT / "scenarios/thresholds/smoke.yaml"),
    }
    path = folder / f"netns-{len(allow)}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run_in_master(net: Hosts, target: Path, scenario_path: Path, results: Path,
                  *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(net.command("master", [
        *CLI, "run", str(scenario_path), "--run-dir", str(target), "--results", str(results),
        "--quiet", *extra]), capture_output=True, text=True, timeout=180)


def statuses(folder: Path) -> tuple[str, dict[str, str]]:
    verdict: dict[str, Any] = json.loads((folder / "verdict.json").read_text())
    return verdict["status"], {r["id"]: r["status"] for r in verdict["results"]}


def test_load_to_an_address_not_allow_listed_is_refused(net: Hosts, target: Path,
                                                        tmp_path: Path) -> None:
    refused = run_in_master(net, target, scenario(tmp_path, []), tmp_path / "r")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"listens on {net.address('target')}, which is not loopback and not in " \
           "target.allow_hosts" in refused.stderr
    assert not (tmp_path / "r").exists()


def test_master_and_two_workers_on_other_hosts(net: Hosts, target: Path,
                                               tmp_path: Path) -> None:
    path = scenario(tmp_path, [net.address("target")])
    master = f"{net.address('master')}:{MASTER_PORT}"
    workers = [subprocess.Popen(net.command(host, [*CLI, "worker", "--master", master]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for host in ("worker-a", "worker-b")]
    try:
        spread = run_in_master(net, target, path, tmp_path / "spread", "--expect-workers", "2",
                               "--master-bind", master)
    finally:
        for worker in workers:
            try:
                worker.wait(timeout=30)  # the master's quit ends them
            except subprocess.TimeoutExpired:
                worker.kill()
    assert spread.returncode == 0, spread.stdout + spread.stderr
    (folder,) = (tmp_path / "spread").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["distributed"]["master_address"] == master
    assert {w["pid"] for w in manifest["distributed"]["workers"]} == {w.pid for w in workers}
    assert manifest["target"]["api_base"].startswith(f"http://{net.address('target')}:")
    check_results(folder, viewers=8, streams=2)  # the single-process schema, every part
    samples = read_table(folder, "samples")
    connects = samples[samples.kind == "ws_connect"].groupby("worker").size().to_dict()
    assert connects == {"worker-1": 4, "worker-2": 4}, connects
    assert {"hls_segment", "ws_event", "http", "rtmp_publish"} <= set(samples.kind)

    single = run_in_master(net, target, path, tmp_path / "single")
    assert single.returncode == 0, single.stdout + single.stderr
    (alone,) = (tmp_path / "single").iterdir()
    assert statuses(folder) == statuses(alone)
    assert statuses(folder)[0] == "PASS"
