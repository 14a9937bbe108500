"""The chaos schedule and journals, without a stack: planned starts with repeats, `--var`
typing, fault windows from a journal, the needs of experiments checked at validation, and every
experiment shipped under chaos/ passing `chaos validate` (k8s and compose ones can be validated
here, not run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.chaos import schedule as chaos
from harness.chaos.actions import resolve_role
from harness.config.scenario import ChaosEntry
from harness.errors import FaultError
from stack.state import RoleState, StackState

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "chaos").rglob("*.json"))


def test_plan_repeats_within_the_run() -> None:
    entries = [ChaosEntry(experiment="a.json", at=10, repeat_every=30),
               ChaosEntry(experiment="b.json", at=20, vars={"outage_s": 2.5, "index": 1,
                                                            "role": "redis"})]
    planned = chaos.plan(entries, ROOT, total_s=75)
    assert [(o.path.name, o.at_s, o.repeat) for o in planned] == [
        ("a.json", 10, 0), ("b.json", 20, 0), ("a.json", 40, 1), ("a.json", 70, 2)]
    assert planned[1].variables == (("index", ":int=1"), ("outage_s", ":float=2.5"),
                                    ("role", "=redis"))
    assert planned[2].name == "00-a-1"


def _run(name: str, kind: str, start: str, end: str) -> dict[str, object]:
    return {"activity": {"name": name, "type": kind}, "status": "succeeded", "start": start,
            "end": end, "output": None}


def test_fault_window_spans_the_method_actions() -> None:
    journal = {
        "experiment": {"title": "t"}, "status": "completed", "deviated": False,
        "start": "2026-11-28T10:00:00+00:00", "end": "2026-11-28T10:00:30+00:00",
        "run": [_run("probe-before", "probe", "2026-11-28T10:00:01+00:00",
                     "2026-11-28T10:00:02+00:00"),
                _run("kill", "action", "2026-11-28T10:00:05+00:00",
                     "2026-11-28T10:00:06+00:00"),
                _run("start", "action", "2026-11-28T10:00:14+00:00",
                     "2026-11-28T10:00:15.5+00:00")],
        "rollbacks": [_run("restore", "action", "2026-11-28T10:00:20+00:00",
                           "2026-11-28T10:00:21+00:00")],
    }
    occurrence = chaos.Occurrence(0, Path("x.json"), 5.0, 0, ())
    record = chaos.fault_record(journal, occurrence, Path("x.journal.json"))
    assert record["end"] - record["start"] == pytest.approx(10.5)
    assert [a["name"] for a in record["actions"]] == ["probe-before", "kill", "start"]
    assert record["rollbacks"][0]["name"] == "restore"
    assert record["status"] == "completed" and record["deviated"] is False


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_experiment_validates(path: Path) -> None:
    entry = ChaosEntry(experiment=str(path), at=1)
    # The needs check is for the local stack only; here only `chaos validate` speaks.
    assert chaos.check_experiments([entry], ROOT, standby=True, proxied=("postgres",),
                                   local_target=True, analytics=True) == []
    experiment = json.loads(path.read_text())
    assert experiment["steady-state-hypothesis"]["probes"], "a steady state to check"
    assert experiment["rollbacks"], "rollbacks that restore the target"


def test_there_are_local_k8s_and_compose_experiments() -> None:
    folders = {p.parent.name for p in EXPERIMENTS}
    assert folders == {"local", "k8s", "compose"}
    local = {p.stem for p in EXPERIMENTS if p.parent.name == "local"}
    assert local == {"kill-postgres", "kill-redis", "restart-service", "rtmp-interrupt",
                     "postgres-failover", "pause-postgres", "network-latency", "kill-kafka",
                     "kill-events-loader", "kill-clickhouse"}


def test_missing_parts_are_all_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"title": "no method", "description": "d"}))
    entries = [ChaosEntry(experiment=str(ROOT / "chaos/local/postgres-failover.json"), at=1),
               ChaosEntry(experiment=str(ROOT / "chaos/local/network-latency.json"), at=2),
               ChaosEntry(experiment="nowhere.json", at=3),
               ChaosEntry(experiment=str(broken), at=4),
               ChaosEntry(experiment=str(ROOT / "chaos/local/kill-kafka.json"), at=5)]
    problems = chaos.check_experiments(entries, tmp_path, standby=False, proxied=(),
                                       local_target=True)
    assert len(problems) == 5, problems
    assert "stack.standby: true" in problems[0]
    assert "stack.latency_proxy" in problems[1]
    assert "nowhere.json not found" in problems[2]
    assert "does not validate" in problems[3]
    assert "stack.analytics: true" in problems[4]


def test_role_aliases_and_unknown_roles() -> None:
    state = StackState(run_dir="/x", roles={
        name: RoleState(name=name, kind=kind, command=[], log="")
        for name, kind in (("postgres", "postgres"), ("redis", "redis"), ("api-1", "api"),
                           ("api-2", "api"))})
    assert resolve_role(state, "api").name == "api-1"
    assert resolve_role(state, "redis").name == "redis"
    with pytest.raises(FaultError, match="no role 'mysql'"):
        resolve_role(state, "mysql")

