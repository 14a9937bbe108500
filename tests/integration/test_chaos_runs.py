"""Every local experiment of chaos/local/ run by `nova-harness run` during load on one real
stack (PostgreSQL standby, latency proxy in front of PostgreSQL), shortened: 20 viewers, 2
streams, API calls and acknowledged writes, the fault 15 s in. Each run must produce a fault
verdict with a time to recover and the data-loss result; the later runs also show that the
earlier ones' rollbacks left the stack whole. Then Ctrl-C in the middle of a fault: the run
exits 130 and the experiment's rollback brought PostgreSQL back.

The default suite runs one experiment during load (the PostgreSQL failover: a kill, a
promotion, acknowledged writes across both; about a minute) and the Ctrl-C case; the others are
the `slow` tier (`make test-all`). Every fault action is still exercised by the default suite,
directly against a stack, in test_fault_actions.py."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.load import read_table
from stack import roles
from stack.state import read_state
from tests.support import RunningStack, running_stack, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
SCENARIO = """name: chaos-{name}
target: {{stack: local}}
stack: {{standby: true, latency_proxy: [postgres]}}
load: {{ramp: 5s, hold: {hold}, ramp_down: 3s, warmup: 3s, cooldown: 2s}}
streams: {{count: 2}}
viewers: {{per_stream: 10, info_interval_s: 1}}
api_clients: {{rate_per_s: 10, mix: {{list_active: 5, get: 3, health: 1}}}}
writes: {{rate_per_s: 2}}
chaos:
  - {{experiment: {experiment}, at: {at}, vars: {vars}}}
thresholds: {thresholds}
"""
VARS = {"kill-postgres": "{outage_s: 3}", "kill-redis": "{outage_s: 3}",
        "pause-postgres": "{outage_s: 3}", "rtmp-interrupt": "{outage_s: 2, index: 0}",
        "network-latency": "{outage_s: 4, delay_ms: 250, jitter_ms: 0}",
        "postgres-failover": "{promote_after_s: 1}", "restart-service": "{}"}


# With a reconnect grace an interrupted broadcaster's stream carries on (docs/service.md);
# test_an_interruption_without_a_grace_ends_the_stream shows the contract's default.
GRACE = {"NOVA_RECONNECT_GRACE_S": "15"}


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running_stack("chaos", standby=True, latency_proxy=("postgres",),
                       service_env=GRACE) as running:
        yield running


def scenario_file(folder: Path, name: str, hold: str = "35s", at: str = "15s") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SCENARIO.format(
        name=name, hold=hold, at=at, experiment=ROOT / "chaos/local" / f"{name}.json",
        vars=VARS[name], thresholds=ROOT / "scenarios/thresholds/failover.yaml"))
    return path


def run(stack: RunningStack, scenario: Path, results: Path) -> tuple[int, str, Path]:
    result = subprocess.run([*CLI, "run", str(scenario), "--run-dir", str(stack.run_dir),
                             "--results", str(results), "--quiet"],
                            capture_output=True, text=True, timeout=240)
    (folder,) = results.iterdir()
    return result.returncode, result.stdout + result.stderr, folder


def pair_is_whole(stack: RunningStack) -> bool:
    state = read_state(stack.run_dir)
    answers = sorted(str(roles.pg_in_recovery(state.roles[n].port or 0))
                     for n in ("postgres", "postgres-standby"))
    return answers == ["False", "True"]


DEFAULT_SUITE = ("postgres-failover",)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in DEFAULT_SUITE else pytest.mark.slow)
    for name in VARS])
def test_experiment_during_load(stack: RunningStack, tmp_path: Path, name: str) -> None:
    code, output, folder = run(stack, scenario_file(tmp_path, name), tmp_path / "results")
    verdict = json.loads((folder / "verdict.json").read_text())
    results = {r["id"]: r["status"] for r in verdict["results"]}
    assert code == 0, output + (folder / "summary.md").read_text()
    (fault,) = verdict["faults"]
    assert fault["status"] == "completed" and fault["deviated"] is False
    assert fault["recovery_s"] is not None and fault["recovery_s"] < 30
    assert fault["writes_acked_before"] > 10 and fault["writes_lost"] == 0
    assert results["acked-writes-lost"] == results["fault-recovery"] == "PASS"
    (journal,) = (folder / "faults").glob("*.journal.json")
    assert json.loads(journal.read_text())["rollbacks"], "rollbacks ran"
    assert pair_is_whole(stack), "the stack was restored for the next experiment"
    check = CHECKS.get(name)
    if check is not None:
        check(folder, fault)


def _events(folder: Path) -> Any:
    return read_table(folder, "events")


def check_failover(folder: Path, fault: dict[str, Any]) -> None:
    events = _events(folder)
    after = events[(events.type == "write_acked") & (events.ts > fault["end"])]
    assert len(after) > 10, "writes continued on the promoted standby"
    manifest = json.loads((folder / "manifest.json").read_text())
    promoted = manifest["faults"][0]["actions"][1]["output"]
    killed = manifest["faults"][0]["actions"][0]["output"]
    assert promoted["role"] != killed["role"]


def check_kill_postgres(folder: Path, fault: dict[str, Any]) -> None:
    events = _events(folder)
    failed = events[(events.type == "write_failed") & (events.ts >= fault["start"]) &
                    (events.ts <= fault["end"])]
    assert len(failed) >= 2, "writes were refused while PostgreSQL was down"
    assert set(failed.value.dropna()) <= {503.0}
    assert fault["viewers_dropped"] == 0, "open viewer sockets stay up (contract §7)"


def check_restart_service(folder: Path, fault: dict[str, Any]) -> None:
    assert fault["viewers_dropped"] == 20
    assert fault["viewers_back_within_30s"] == 20 and fault["viewers_never_back"] == 0


def check_rtmp(folder: Path, fault: dict[str, Any]) -> None:
    """Within the grace the broadcaster republished its key: the same stream is live again
    and its viewers were never told it ended."""
    events = _events(folder)
    cut = events[events.type == "publish_interrupted"]
    assert len(cut) == 1 and fault["broadcaster_interruptions"] == 1
    assert fault["broadcaster_reconnected"] == 1
    ended = events[(events.type == "stream_ended_seen") & (events.stream == cut.stream.iloc[0])
                   & (events.ts < fault["end"])]
    assert ended.empty, ended
    samples = read_table(folder, "samples")
    retry = samples[(samples.kind == "rtmp_publish") & (samples.name == "reconnect")]
    assert len(retry) == 1 and retry.ok.iloc[0], "the key was taken back within the grace"
    verdict = json.loads((folder / "verdict.json").read_text())
    statuses = {r["id"]: r["status"] for r in verdict["results"]}
    assert statuses["broadcast-resumed"] == statuses["streams-not-ended-by-faults"] == "PASS"


@pytest.mark.slow
def test_an_interruption_without_a_grace_ends_the_stream(tmp_path: Path) -> None:
    """The contract's default: the drop ends the stream (connection_lost), the republish is
    refused, and the verdict says the stream did not come back."""
    with running_stack("chaos-no-grace", standby=True, latency_proxy=("postgres",)) as plain:
        code, output, folder = run(plain, scenario_file(tmp_path, "rtmp-interrupt"),
                                   tmp_path / "results")
    events = _events(folder)
    cut = events[events.type == "publish_interrupted"]
    ended = events[(events.type == "stream_ended_seen") & (events.stream == cut.stream.iloc[0])]
    # Usually all ten read `stream_ended` (connection_lost); a viewer whose socket was reset
    # as the server closed it learns the end from the refused reconnect (http_410).
    assert ended.user.nunique() == 10 and "connection_lost" in set(ended.detail)
    assert set(ended.detail) <= {"connection_lost", "http_410"}
    samples = read_table(folder, "samples")
    retry = samples[(samples.kind == "rtmp_publish") & (samples.name == "reconnect")]
    assert len(retry) == 1 and not retry.ok.iloc[0], "an ended stream's key is refused"
    verdict = json.loads((folder / "verdict.json").read_text())
    failed = {r["id"] for r in verdict["results"] if r["status"] == "FAIL"}
    assert code == 1, output
    assert {"broadcast-resumed", "streams-not-ended-by-faults"} <= failed


def check_latency(folder: Path, fault: dict[str, Any]) -> None:
    events = _events(folder)
    acked = events[events.type == "write_acked"]
    # One write is several database round trips, each 250 ms slower: few fit in the window.
    during = acked[(acked.ts >= fault["start"] + 0.3) & (acked.ts < fault["end"] - 1.0)]
    before = acked[acked.ts < fault["start"]]
    assert len(during) >= 1
    assert during.value.min() > 250 > before.value.median()


CHECKS = {"postgres-failover": check_failover, "kill-postgres": check_kill_postgres,
          "pause-postgres": None, "restart-service": check_restart_service,
          "rtmp-interrupt": check_rtmp, "network-latency": check_latency}


def test_ctrl_c_during_a_fault_runs_the_rollback(stack: RunningStack, tmp_path: Path) -> None:
    scenario = tmp_path / "kill-postgres.yaml"
    # The fault as soon as the ramp is over: only the interruption is under test here.
    scenario.write_text(scenario_file(tmp_path, "kill-postgres", hold="60s", at="6s").read_text()
                        .replace("{outage_s: 3}", "{outage_s: 120}"))
    results = tmp_path / "results"
    proc = subprocess.Popen([*CLI, "run", str(scenario), "--run-dir", str(stack.run_dir),
                             "--results", str(results), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = read_state(stack.run_dir).roles["postgres"].port or 0
        assert wait_for(lambda: not roles.pg_ready(port), 60.0, poll_s=0.2), "fault started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert roles.pg_ready(port), "the rollback started PostgreSQL again"
    (folder,) = results.iterdir()
    (journal_path,) = (folder / "faults").glob("*.journal.json")
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted"
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "aborted" and manifest["faults"][0]["status"] == "interrupted"
    shutil.rmtree(results, ignore_errors=True)


@pytest.mark.slow
def test_wrong_counts_after_a_restart_fail_the_verdict(tmp_path: Path) -> None:
    """The same restart against a service that reports count + 1: counts-reconverge fails."""
    with running_stack("chaos-broken", standby=True, latency_proxy=("postgres",),
                       service_env={"NOVA_BROKEN_VIEWER_COUNT_OFFSET": "1"}) as broken:
        code, output, folder = run(broken, scenario_file(tmp_path, "restart-service"),
                                   tmp_path / "results")
    verdict = json.loads((folder / "verdict.json").read_text())
    failed = {r["id"] for r in verdict["results"] if r["status"] == "FAIL"}
    assert code == 1, output
    assert failed == {"counts-reconverge"}
    assert verdict["faults"][0]["count_match_after"] == 0.0
