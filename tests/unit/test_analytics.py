"""§14 "ClickHouse records match real events" on synthetic runs with known answers: a store
that holds exactly what the harness observed passes; a missing, an extra and a duplicated event
each fail and are named; the settle time, the lag and the per-fault recovery are judged as
documented (docs/thresholds.md, "Analytics")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from analysis.analytics import compare, derived, fault_lags
from analysis.judge import judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds
from tests.unit.synthetic import START, manifest, thresholds_file, write_run

TYPES = {"stream_created": "stream_created", "stream_active": "stream_started",
         "stream_ended": "stream_ended", "viewer_joined": "viewer_joined",
         "viewer_left": "viewer_left"}
STREAM = "11111111-aaaa"


def observed(viewers: int = 3) -> list[tuple[Any, ...]]:
    """A stream created at 0 s, active at 1 s, viewers joining at 2.. s and leaving at 20.. s,
    ended (told to a viewer) at 30 s."""
    rows: list[tuple[Any, ...]] = [(START, "stream_created", STREAM, None, None, "{}"),
            (START + 1, "stream_active_api", STREAM, None, None, None)]
    for i in range(viewers):
        rows.append((START + 2 + i, "viewer_connected", STREAM, f"v{i}", 0.0, None))
        rows.append((START + 20 + i, "viewer_closed", STREAM, f"v{i}", 1000.0, None))
    rows.append((START + 30, "stream_ended_seen", STREAM, "v0", None, None))
    return rows


def stored_event(offset_s: float, kind: str, ident: str, lag_s: float = 0.2,
                 rows: int = 1) -> tuple[Any, ...]:
    return (START + offset_s, "clickhouse_event", STREAM, "viewer", lag_s,
            json.dumps({"id": ident, "type": kind, "rows": rows}))


def stored(viewers: int = 3) -> list[tuple[Any, ...]]:
    rows = [stored_event(0, "stream_created", "e-c"), stored_event(1, "stream_started", "e-a")]
    for i in range(viewers):
        rows.append(stored_event(2 + i, "viewer_joined", f"e-j{i}"))
        rows.append(stored_event(20 + i, "viewer_left", f"e-l{i}"))
    rows.append(stored_event(30, "stream_ended", "e-e"))
    return rows


def snapshot(waited_s: float = 12.0) -> tuple[Any, ...]:
    return (START + 45, "analytics_snapshot", None, None, waited_s,
            json.dumps({"table": "t", "streams": 1, "events": 9, "settle_s": 10,
                        "types": TYPES}))


def run_with(tmp_path: Path, events: list[tuple[Any, ...]], **extra: Any) -> Any:
    return load_run(write_run(tmp_path / "run", [], manifest(duration_s=40.0, **extra),
                              events=events))


def judged_match(run: Any, folder: Path) -> Any:
    """The clickhouse-events-match line as scenarios/thresholds/analytics.yaml has it."""
    thresholds = load_thresholds(thresholds_file(folder, """
  - id: clickhouse-events-match
    checklist: "§14"
    source: derived
    metric: clickhouse_events_mismatched
    comparator: "<="
    limit: 0
    settle_s: 5
"""))
    (result,) = judge(run, thresholds).results
    return result


def test_a_store_holding_what_was_observed_matches(tmp_path: Path) -> None:
    run = run_with(tmp_path, observed() + stored() + [snapshot()])
    found = compare(run)
    assert found is not None
    assert (found.observed, found.stored, found.mismatched) == (9, 9, 0)
    estimate = derived(run, "clickhouse_events_mismatched")
    assert estimate.value == 0 and estimate.n == 9
    assert "compared 9 observed with 9 stored events of 1 streams" in str(estimate.detail)


def test_missing_extra_and_duplicated_events_are_counted_and_named(tmp_path: Path) -> None:
    kept = [r for r in stored() if "e-j1" not in str(r[5])]          # a join lost
    kept.append(stored_event(25, "viewer_left", "e-ghost"))           # a leave nobody saw
    kept = [stored_event(0, "stream_created", "e-c", rows=2) if "e-c" in str(r[5]) else r
            for r in kept]                                            # one id read twice
    run = run_with(tmp_path, observed() + kept + [snapshot()])
    found = compare(run)
    assert found is not None
    assert (found.missing, found.extra, found.duplicated) == (1, 1, 1)
    text = " | ".join(found.examples)
    assert "viewer_joined of stream 11111111 at" in text and "(v1) observed, not stored" in text
    assert "stored viewer_left e-ghost" in text
    assert "e-c stored 2 times" in text
    assert derived(run, "clickhouse_events_missing").value == 1


def test_the_verdict_names_what_is_missing(tmp_path: Path) -> None:
    kept = [r for r in stored() if "e-j" not in str(r[5])]
    run = run_with(tmp_path, observed() + kept + [snapshot()])
    result = judged_match(run, tmp_path)
    assert result.status == "FAIL"
    assert "3 missing" in result.reason and "observed, not stored" in result.reason


def test_a_read_before_the_settle_time_is_inconclusive(tmp_path: Path) -> None:
    run = run_with(tmp_path, observed() + stored() + [snapshot(waited_s=2.0)])
    result = judged_match(run, tmp_path)
    assert result.status == "INCONCLUSIVE"
    assert "read 2.0 s after the load" in result.reason


def test_no_analytics_source_is_no_data_and_a_failed_read_is_inconclusive(
        tmp_path: Path) -> None:
    plain = run_with(tmp_path, observed())
    assert math.isnan(derived(plain, "clickhouse_events_mismatched").value)
    assert derived(plain, "clickhouse_events_mismatched").unjudgeable is None
    failed = load_run(write_run(tmp_path / "failed", [], manifest(duration_s=40.0),
                                events=[*observed(), (START + 45, "analytics_snapshot_failed",
                                                      None, None, None, "HTTP 500")]))
    assert "HTTP 500" in str(derived(failed, "clickhouse_events_mismatched").unjudgeable)


def test_the_ingest_lag_is_the_p95_of_first_stored_minus_happened(tmp_path: Path) -> None:
    late = [stored_event(2 + i, "viewer_joined", f"e-x{i}", lag_s=float(i)) for i in range(20)]
    run = run_with(tmp_path, [*late, snapshot()])
    assert derived(run, "events_ingest_lag_p95_s").value == 18.05


def test_each_fault_is_judged_on_the_events_of_its_own_window(tmp_path: Path) -> None:
    """Broker down 10-16 s (events stored late until 20 s), loader down 40-46 s (nothing
    late), ClickHouse down from 70 s with nothing stored in time after it."""
    faults = [{"id": f"0{i}-{name}", "experiment": f"{name}.json", "title": name,
               "start": START + at, "end": START + at + 6, "status": "completed"}
              for i, (name, at) in enumerate((("kill-kafka", 10), ("kill-events-loader", 40),
                                              ("kill-clickhouse", 70)))]
    events = []
    for second in range(5, 95):
        lag = (20 - second + 1.0) if 10 <= second < 20 else 8.0 if second >= 70 else 0.3
        events.append(stored_event(second, "viewer_joined", f"e{second}", lag_s=lag))
    run = run_with(tmp_path, [*events, snapshot()], faults=faults)
    lags = {f.id: f for f in fault_lags(run)}
    # 10..15 s were late (lag > 5): recovered at the first event after the last late one.
    assert lags["00-kill-kafka"].recovery_s == 6.0 and lags["00-kill-kafka"].late == 6
    assert lags["01-kill-events-loader"].recovery_s == 0.0
    assert math.isinf(lags["02-kill-clickhouse"].recovery_s)
    assert math.isinf(derived(run, "analytics_lag_recovery_s").value)
