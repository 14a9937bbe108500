"""Fault verdict figures on synthetic runs with known shapes: recovery time, viewers dropped and
back, acknowledged writes lost; the fault thresholds judge them, and a run without faults is
inconclusive rather than passing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analysis import fault_verdicts as faults
from analysis.judge import judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds
from tests.unit.synthetic import START, http_rows, manifest, thresholds_file, write_run

FAULT = {"id": "00-kill-0", "title": "kill", "status": "completed", "deviated": False,
         "start": START + 40.0, "end": START + 50.0}


def _errors_until(recover_at_s: float) -> list[tuple[Any, ...]]:
    """10 requests/s for 100 s; failing from 40 s until `recover_at_s`, slow just after."""
    rows = []
    for row in http_rows([5.0] * 1000, step_s=0.1):
        t = row[0] - START
        if 40.0 <= t < recover_at_s:
            row = (*row[:4], 5000.0, False, 503, "down", *row[8:])
        rows.append(row)
    return rows


def _events(dropped: int, back_after_s: float | None,
            stream_ended: int = 0) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    events: list[tuple[Any, ...]] = []
    samples: list[tuple[Any, ...]] = []
    for i in range(dropped):
        user = f"v{i}"
        events.append((START + 41.0, "viewer_dropped", "s1", user, None, None))
        if i < stream_ended:  # its reconnect was refused: the stream had ended
            events.append((START + 41.5, "stream_ended_seen", "s1", user, None, "http_410"))
            continue
        if back_after_s is not None:
            samples.append((START + 41.0, START + 41.0, "ws_reconnect", "reconnect",
                            back_after_s * 1000, True, None, None, 0, "local", user, "s1"))
    return events, samples


def _writes(acked: int, lost: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for i in range(acked):
        rows.append((START + i, "write_acked", f"w{i}", None, 5.0, "{}"))
        rows.append((START + 99, "write_lost" if i < lost else "write_verified", f"w{i}",
                     None, None, None))
    return rows


def make_run(tmp_path: Path, recover_at_s: float, dropped: int = 0,
             back_after_s: float | None = None, lost: int = 0,
             with_fault: bool = True, stream_ended: int = 0) -> Path:
    events, reconnects = _events(dropped, back_after_s, stream_ended)
    document = manifest(faults=[FAULT] if with_fault else [])
    return write_run(tmp_path / "run", _errors_until(recover_at_s) + reconnects, document,
                     events + _writes(30, lost))


def test_recovery_is_measured_from_the_injection(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, recover_at_s=57.0))
    (figure,) = faults.figures(run)
    assert figure.baseline_error_ratio == 0.0
    assert figure.during_error_ratio == 1.0
    # Injected at 40 s; errors stop at 57 s, 7 s after the window's end at 50 s.
    assert figure.recovery_s == 17.0
    assert figure.outage_s == 17.0 and figure.outage_started_at == START + 40.0
    assert faults.derived(run, "fault_recovery_s").value == 17.0
    assert faults.derived(run, "fault_outage_s").value == 17.0


def test_an_outage_inside_the_window_is_not_recovered_in_zero_seconds(tmp_path: Path) -> None:
    """The window ends after the experiment waited for health (50 s); users saw errors from
    40 s to 48.2 s. The figures say 8.2 s, not "recovered 0.0 s" after the window."""
    run = load_run(make_run(tmp_path, recover_at_s=48.2))
    (figure,) = faults.figures(run)
    assert figure.outage_s == pytest.approx(8.2)
    assert figure.recovery_s == pytest.approx(8.2)
    line = faults.describe(figure)
    assert "outage seen by users 8.2 s" in line and "recovered 8.2 s after injection" in line


def test_a_fault_nobody_noticed_has_no_outage(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, recover_at_s=40.0))
    (figure,) = faults.figures(run)
    assert figure.outage_s == 0.0 and figure.outage_started_at is None
    assert figure.recovery_s == 0.0
    assert "no operation failed" in faults.describe(figure)


def test_never_recovering_is_infinite_and_fails(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, recover_at_s=95.0))
    assert faults.figures(run)[0].recovery_s is None
    assert faults.derived(run, "fault_recovery_s").value == float("inf")
    rules = thresholds_file(tmp_path, "  - {id: rec, checklist: x, source: derived, "
                                      "metric: fault_recovery_s, comparator: '<', limit: 30}\n")
    verdict = judge(run, load_thresholds(rules))
    assert [r.status for r in verdict.results] == ["FAIL"]


def test_viewers_dropped_and_back(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, 50.0, dropped=4, back_after_s=3.0))
    figure = faults.figures(run)[0]
    assert (figure.viewers_dropped, figure.viewers_back_within_30s,
            figure.viewers_never_back) == (4, 4, 0)
    assert faults.derived(run, "viewers_back_within_30s_ratio").value == 1.0
    slow = load_run(make_run(tmp_path / "slow", 50.0, dropped=4, back_after_s=45.0))
    assert faults.derived(slow, "viewers_back_within_30s_ratio").value == 0.0
    gone = load_run(make_run(tmp_path / "gone", 50.0, dropped=4, back_after_s=None))
    assert faults.figures(gone)[0].viewers_never_back == 4
    # One of four found its stream ended (reconnect refused 410): not a viewer lost to the
    # fault, so three dropped, all back.
    ended = load_run(make_run(tmp_path / "ended", 50.0, dropped=4, back_after_s=3.0,
                              stream_ended=1))
    figure = faults.figures(ended)[0]
    assert (figure.viewers_dropped, figure.viewers_never_back) == (3, 0)


def test_a_410_after_getting_back_does_not_unmake_the_drop(tmp_path: Path) -> None:
    """All four back 3 s after the fault; at the run's end one's socket closes before it reads
    `stream_ended` and its reconnect is refused 410. The fault still dropped four."""
    events, reconnects = _events(4, 3.0)
    events.append((START + 95.0, "stream_ended_seen", "s1", "v0", None, "http_410"))
    folder = write_run(tmp_path / "run", _errors_until(50.0) + reconnects,
                       manifest(faults=[FAULT]), events + _writes(30, 0))
    figure = faults.figures(load_run(folder))[0]
    assert (figure.viewers_dropped, figure.viewers_back_within_30s) == (4, 4)


def test_lost_writes_are_counted(tmp_path: Path) -> None:
    healthy = load_run(make_run(tmp_path, 50.0))
    assert faults.derived(healthy, "acked_writes_lost").value == 0
    assert faults.derived(healthy, "acked_writes_checked").value == 1.0
    lossy = load_run(make_run(tmp_path / "lossy", 50.0, lost=3))
    assert faults.derived(lossy, "acked_writes_lost").value == 3
    assert faults.figures(lossy)[0].writes_lost == 3


def test_no_fault_means_inconclusive_not_pass(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, 50.0, with_fault=False))
    assert faults.figures(run) == []
    thresholds = load_thresholds(Path("scenarios/thresholds/failover.yaml"))
    verdict = judge(run, thresholds)
    by_id = {r.id: r.status for r in verdict.results}
    assert by_id["fault-injected"] == "FAIL"
    assert by_id["fault-recovery"] == "INCONCLUSIVE"


def test_fault_and_recovery_phases_are_excluded(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, 57.0))
    names = [p["name"] for p in faults.judged_phases(run)]
    assert names.count("fault") == 1 and names.count("recovery") == 1
    # Only the measured recovery (50 s → 57 s) is left out, not a fixed 30 s.
    recovery = next(p for p in faults.judged_phases(run) if p["name"] == "recovery")
    assert (recovery["start"], recovery["end"]) == (START + 50.0, START + 57.0)
    never = load_run(make_run(tmp_path / "never", 95.0))
    bounded = next(p for p in faults.judged_phases(never) if p["name"] == "recovery")
    assert bounded["end"] - bounded["start"] == faults.RECOVERY_MAX_S
    rules = thresholds_file(tmp_path, "  - {id: ok, checklist: x, source: samples, "
                                      "filter: {kind: http}, aggregation: success_ratio, "
                                      "comparator: '>=', limit: 1.0, "
                                      "exclude_phases: [fault, recovery]}\n")
    assert [r.status for r in judge(run, load_thresholds(rules)).results] == ["PASS"]


SUCCESS_OUTSIDE_FAULTS = ("  - {id: ok, checklist: x, source: samples, filter: {kind: http}, "
                          "aggregation: success_ratio, comparator: '>=', limit: 1.0, "
                          "min_samples: 1, exclude_phases: [fault, recovery]}\n")


def _one_failure(tmp_path: Path, started_s: float, latency_ms: float,
                 kind: str = "http") -> Path:
    """Clean traffic (every request done 5 ms after it began) and one failed operation
    beginning `started_s` into the run and lasting `latency_ms`; the fault spans 40-50 s."""
    rows = [row for row in _errors_until(40.0) if not 39.0 <= row[0] - START < 40.0]
    ts = START + started_s
    rows.append((ts, ts, kind, "list_active", latency_ms, False, None, "ConnectionResetError",
                 0, "local", "api", None))
    return write_run(tmp_path, rows, manifest(faults=[FAULT]))


def test_a_request_in_flight_when_the_fault_began_is_the_faults(tmp_path: Path) -> None:
    """A SIGKILLed service fails the request it was serving; the request began 20 ms before
    the fault's first action was stamped. It counts in the fault, not in the baseline or in
    a threshold that excludes faults."""
    rules = load_thresholds(thresholds_file(tmp_path, SUCCESS_OUTSIDE_FAULTS))
    in_flight = load_run(_one_failure(tmp_path / "in-flight", 39.98, 30.0))
    assert [r.status for r in judge(in_flight, rules).results] == ["PASS"]
    figure = faults.figures(in_flight)[0]
    assert figure.baseline_error_ratio == 0.0
    assert figure.during_error_ratio == pytest.approx(1 / 101)  # 100 requests in 10 s, + 1
    # The same failure, over 10 ms before the fault began, is the target's own.
    over = load_run(_one_failure(tmp_path / "over", 39.98, 10.0))
    assert [r.status for r in judge(over, rules).results] == ["FAIL"]
    assert faults.figures(over)[0].baseline_error_ratio > 0.0


def test_a_delay_read_before_a_fault_is_not_stretched_into_it(tmp_path: Path) -> None:
    """A `ws_event`'s latency is the push delay read at its `ts`, not an operation that went
    on after it: a long one read a second before the fault stays outside the fault."""
    rules = load_thresholds(thresholds_file(tmp_path, SUCCESS_OUTSIDE_FAULTS.replace(
        "kind: http", "kind: ws_event")))
    run = load_run(_one_failure(tmp_path / "event", 39.0, 5000.0, kind="ws_event"))
    assert [r.status for r in judge(run, rules).results] == ["FAIL"]


def test_faults_json_is_read_when_the_manifest_lacks_them(tmp_path: Path) -> None:
    import json

    folder = make_run(tmp_path, 57.0, with_fault=False)
    (folder / "faults").mkdir()
    (folder / "faults" / "faults.json").write_text(json.dumps([FAULT]))
    assert [f.id for f in load_run(folder).faults()] == ["00-kill-0"]


def _count_events(told_after: int) -> list[tuple[Any, ...]]:
    """Two viewers held on s1 throughout; after the fault the target tells `told_after`."""
    rows: list[tuple[Any, ...]] = [(START + 1, "viewer_connected", "s1", f"v{i}", 0.0, None)
                                   for i in range(2)]
    rows += [(START + 2, "viewer_count_observed", "s1", "v0", 2.0, None),
             # A transitional count during the fault is not held against the target...
             (START + 45, "viewer_count_observed", "s1", "v0", 1.0, None),
             # ... the last word after it is.
             (START + 60, "viewer_count_observed", "s1", "v0", float(told_after), None),
             (START + 70, "viewer_count_observed", "s1", "v1", float(told_after), None)]
    return rows


def test_counts_reconverge_after_the_fault(tmp_path: Path) -> None:
    document = manifest(faults=[FAULT])
    good = load_run(write_run(tmp_path / "good", http_rows([5.0] * 1000), document,
                              _count_events(2)))
    (figure,) = faults.figures(good)
    assert (figure.count_match_after, figure.count_observations_after) == (1.0, 2)
    assert faults.derived(good, "counts_reconverged_ratio").value == 1.0
    wrong = load_run(write_run(tmp_path / "wrong", http_rows([5.0] * 1000), document,
                               _count_events(3)))
    assert faults.derived(wrong, "counts_reconverged_ratio").value == 0.0
