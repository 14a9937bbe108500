"""Every shipped scenario, shortened, against a healthy reference stack ends in the verdict it
documents (PASS): a scenario that cries wolf on a healthy target is a defect of the harness.
The default suite's shipped scenario is viewers-250, run by `make demo` (tests/e2e/test_demo.py);
creating and deleting streams through the API mix is in test_run.py's single-process run. Every
shipped scenario runs here under `make test-all` (marker `slow`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.load import read_table
from tests.integration.test_run import CLI, ROOT
from tests.support import new_run_dir

# Fault scenarios hold long enough for their experiment at 35-40 s and its recovery.
SHORTENED = {
    "analytics-consistency": ["--duration", "30s"],
    "failover-analytics": ["--duration", "110s"],
    "concurrent-3x20": ["--duration", "40s", "--api-rate", "10"],
    "smoke": ["--duration", "20s"],
    "viewers-100": ["--duration", "50s"],  # 40 s left 9 of the 10 /metrics samples needed
    "viewers-250": ["--duration", "50s"],
    "failover-kill-postgres": ["--duration", "90s", "--viewers-per-stream", "10"],
    "failover-pause-postgres": ["--duration", "90s", "--viewers-per-stream", "10"],
    "failover-postgres": ["--duration", "90s", "--viewers-per-stream", "10"],
    "failover-redis": ["--duration", "90s", "--viewers-per-stream", "10"],
    "failover-service": ["--duration", "90s", "--viewers-per-stream", "10"],
    "network-latency": ["--duration", "90s", "--viewers-per-stream", "10"],
    "rtmp-interruption": ["--duration", "90s", "--viewers-per-stream", "10"],
}
# Not runnable here as a plain `run`: a soak (tests/integration/test_soak.py) and a scenario
# for a deployed remote target (validated in tests/unit/test_scenario.py).
NOT_HERE = {"soak-4h", "staging-prometheus"}
DEFAULT_SUITE: set[str] = set()


def test_every_shipped_scenario_is_listed() -> None:
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert shipped == set(SHORTENED) | NOT_HERE


@pytest.fixture
def own_stack_dir() -> Iterator[Path]:
    """A stack of the scenario's own making (its `stack:` block: a standby, service
    settings); stopped and removed after it."""
    run_dir = new_run_dir("shipped")
    yield run_dir
    subprocess.run([*CLI, "stack", "down", "--run-dir", str(run_dir)], capture_output=True,
                   timeout=60)
    shutil.rmtree(run_dir, ignore_errors=True)


def _run(name: str, stack_dir: Path, results: Path) -> tuple[int, str, Path]:
    result = subprocess.run(
        [*CLI, "run", str(ROOT / "scenarios" / f"{name}.yaml"), "--run-dir", str(stack_dir),
         "--results", str(results), "--quiet", *SHORTENED[name]],
        capture_output=True, text=True, timeout=600)
    (folder,) = list(results.iterdir())
    return result.returncode, result.stdout + result.stderr, folder


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in DEFAULT_SUITE else pytest.mark.slow)
    for name in sorted(SHORTENED)])
def test_shipped_scenario_passes_on_a_healthy_stack(name: str, own_stack_dir: Path,
                                                    tmp_path: Path) -> None:
    code, output, folder = _run(name, own_stack_dir, tmp_path / "results")
    verdict = json.loads((folder / "verdict.json").read_text())
    not_passed = [(r["id"], r["status"], r["reason"]) for r in verdict["results"]
                  if r["status"] not in ("PASS", "NOT_APPLICABLE")]
    assert (verdict["status"], code) == ("PASS", 0), (not_passed, output[-3000:])
    assert not any(r["status"] == "PASS" and r["n"] == 0 and r["population_n"] in (0, None)
                   and r["observed"] is None for r in verdict["results"])
    if name == "concurrent-3x20":
        # The API client deletes what it created, with the token that created it.
        deletes = read_table(folder, "samples").query("kind == 'http' and name == 'delete'")
        assert len(deletes) > 0 and not (deletes.status == 403).any()
