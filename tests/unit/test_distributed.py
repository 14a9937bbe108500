"""Runs with workers, judged: a worker clock beyond the limit makes cross-clock latency
INCONCLUSIVE (and only that); a lost worker leaves no PASS and is named; the master's address
and the load allow-list are checked before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analysis.judge import Verdict, judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds
from harness.config.scenario import TargetSpec
from harness.run.master import bind_problems, bind_taken, split_bind
from tests.unit.synthetic import START, http_rows, manifest, thresholds_file, write_run

PUSH_AND_API = """  - id: push-p95
    checklist: "§3 push latency"
    source: samples
    filter: {kind: ws_event}
    field: latency_ms
    aggregation: p95
    comparator: "<"
    limit: 100
  - id: api-p95
    checklist: "§2 API latency"
    source: samples
    filter: {kind: http}
    field: latency_ms
    aggregation: p95
    comparator: "<"
    limit: 500
"""


def _push_rows(latency_ms: float, count: int = 50) -> list[tuple[Any, ...]]:
    return [(START + 1 + i, START + 1 + i, "ws_event", "viewer_count_changed", latency_ms,
             True, None, None, 0, "worker-1", f"worker-1-v{i % 4}", "s1") for i in range(count)]


def _clock(worker: str, offset_ms: float, rtt_ms: float, at_s: float = 1.0) -> tuple[Any, ...]:
    return (START + at_s, "worker_clock", None, worker, offset_ms, f"rtt_ms={rtt_ms:.3f}")


def _verdict(tmp_path: Path, events: list[tuple[Any, ...]], api_ms: float = 20.0,
             limit_ms: float = 5.0) -> Verdict:
    rows = _push_rows(40.0) + http_rows([api_ms] * 50)
    document = manifest(distributed={"master_address": "10.0.0.2:5557", "local_workers": 0,
                                     "expected_workers": 2, "max_clock_offset_ms": limit_ms,
                                     "workers": []})
    folder = write_run(tmp_path / "run", rows, document, events=events)
    return judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, PUSH_AND_API)))


def _status(verdict: Verdict) -> dict[str, str]:
    return {r.id: r.status for r in verdict.results}


def test_clocks_within_the_limit_leave_the_verdict_alone(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, [_clock("worker-1", 0.2, 0.8), _clock("worker-2", -0.1, 0.5)])
    assert _status(verdict) == {"push-p95": "PASS", "api-p95": "PASS"}
    assert verdict.status == "PASS"


def test_a_clock_off_by_50_ms_makes_push_latency_inconclusive(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, [_clock("worker-1", 0.1, 0.6),
                                  _clock("worker-2", 50.2, 0.8, at_s=11)])
    push = next(r for r in verdict.results if r.id == "push-p95")
    assert push.status == "INCONCLUSIVE"
    assert "worker-2's clock is +50.2 ms (± 0.4 ms) off the master's" in push.reason
    assert "5 ms limit" in push.reason and "measured:" in push.reason
    assert _status(verdict)["api-p95"] == "PASS"  # one clock: no offset in it
    assert any("worker-2" in note for note in verdict.notes)


def test_the_limit_comes_from_the_scenario(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, [_clock("worker-2", 50.2, 0.8)], limit_ms=60.0)
    assert _status(verdict)["push-p95"] == "PASS"


def test_a_clock_that_cannot_be_bounded_is_not_trusted(tmp_path: Path) -> None:
    # 1 ms off, but every round trip took 30 ms: the offset may be anything up to ±16 ms.
    verdict = _verdict(tmp_path, [_clock("worker-1", 1.0, 30.0), _clock("worker-1", -1.0, 32.0)])
    push = next(r for r in verdict.results if r.id == "push-p95")
    assert push.status == "INCONCLUSIVE"
    assert "could not be bounded within 5 ms" in push.reason


def test_one_slow_round_does_not_hide_a_tight_one(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, [_clock("worker-1", 0.5, 1.0), _clock("worker-1", 3.0, 40.0)])
    assert _status(verdict)["push-p95"] == "PASS"


def test_a_lost_worker_is_named_and_nothing_passes(tmp_path: Path) -> None:
    lost = (START + 21, "worker_lost", None, "worker-2", 4.0,
            "stopped sending heartbeats; held 4 viewers; host h2 pid 4242")
    verdict = _verdict(tmp_path, [_clock("worker-2", 0.1, 0.5), lost])
    assert set(_status(verdict).values()) == {"INCONCLUSIVE"}
    assert verdict.status == "INCONCLUSIVE"
    assert any(problem.startswith("worker-2 lost at +21 s (stopped sending heartbeats; held 4 "
                                  "viewers") for problem in verdict.validity)
    assert all("worker-2 lost" in r.reason for r in verdict.results)


def test_a_measured_failure_stands_when_a_worker_was_lost(tmp_path: Path) -> None:
    lost = (START + 21, "worker_lost", None, "worker-2", 4.0, "quit; held 4 viewers")
    verdict = _verdict(tmp_path, [lost], api_ms=900.0)
    assert _status(verdict) == {"push-p95": "INCONCLUSIVE", "api-p95": "FAIL"}
    assert verdict.status == "FAIL"


@pytest.mark.parametrize(("text", "problem"), [
    ("127.0.0.1:0", None), ("0.0.0.0:5557", None), ("[::1]:5557", None),
    ("5557", "expected HOST:PORT"), ("127.0.0.1:99999", "expected HOST:PORT"),
    ("master.example:5557", "must be an IP address"),
])
def test_master_bind_is_checked(text: str, problem: str | None) -> None:
    found = bind_problems(text)
    assert (problem is None and not found) or (problem is not None and problem in found[0])


def test_an_address_not_of_this_machine_is_refused_before_anything_starts() -> None:
    # 192.0.2.0/24 is reserved for documentation: never an address of this machine.
    assert "cannot listen there" in bind_taken(*split_bind("192.0.2.7:5557"))[0]
    assert bind_taken("127.0.0.1", 0) == []


def test_load_goes_only_to_listed_hosts() -> None:
    assert TargetSpec(allow_hosts=["10.251.7.1"]).allowed("10.251.7.1")
    assert not TargetSpec(allow_hosts=["10.251.7.1"]).allowed("10.251.7.2")
    assert not TargetSpec().allowed("10.251.7.1")
    with pytest.raises(ValueError, match="allow_hosts"):
        TargetSpec(stack=None, base_url="http://10.251.7.9:8080")
    TargetSpec(stack=None, base_url="http://10.251.7.9:8080", allow_hosts=["10.251.7.9"])


def test_the_time_after_a_loss_is_marked_for_the_charts(tmp_path: Path) -> None:
    from analysis.fault_verdicts import judged_phases
    from analysis.run_report import phase_line

    lost = (START + 21, "worker_lost", None, "worker-2", 4.0, "quit; held 4 viewers")
    folder = write_run(tmp_path / "run", http_rows([20.0] * 50), manifest(), events=[lost])
    run = load_run(folder)
    (marked,) = [p for p in judged_phases(run) if p["name"] == "worker_lost"]
    assert marked["start"] == START + 21 and marked["end"] == run.end_s
    assert "worker_lost" not in phase_line(run)  # judged, not left out


def test_a_saturated_worker_makes_the_generator_saturated() -> None:
    from harness.run.master import merged_validity

    calm = {"cpu_max_pct": 40.0, "loop_lag_max_ms": 3.0, "saturated_seconds": 0,
            "late_sends": 1, "saturated": False}
    busy = {"cpu_max_pct": 99.0, "loop_lag_max_ms": 240.0, "saturated_seconds": 12,
            "late_sends": 5, "saturated": True}
    assert merged_validity([calm, busy]) == {"cpu_max_pct": 99.0, "loop_lag_max_ms": 240.0,
                                             "saturated_seconds": 12, "late_sends": 6,
                                             "saturated": True}
    assert merged_validity([calm])["saturated"] is False


def test_stack_listen_is_checked_with_every_problem(tmp_path: Path) -> None:
    from stack import local
    from stack.errors import StackStartError
    from stack.roles import StackOptions

    with pytest.raises(StackStartError) as refused:
        local._check_options(StackOptions(run_dir=tmp_path, listen="192.0.2.7",
                                          analytics=True, standby=True))
    message = str(refused.value)
    assert "--listen 192.0.2.7: not with --standby" in message
    assert "--listen 192.0.2.7: not with --analytics" in message
    assert "--listen 192.0.2.7: cannot listen there" in message
    with pytest.raises(StackStartError, match="expected an IPv4 address"):
        local._check_options(StackOptions(run_dir=tmp_path, listen="target-host"))
    local._check_options(StackOptions(run_dir=tmp_path))  # loopback: nothing to say
