"""§14 consistency figures on synthetic runs with known answers: each check passes on a
consistent target and fails on the inconsistency it exists to catch."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.consistency import derived, problems, source_figures
from analysis.load import load_run
from tests.unit.synthetic import START, manifest, write_run

STREAM = "s-1"


def iso(offset_s: float) -> str:
    stamp = datetime.fromtimestamp(START + offset_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def event(offset_s: float, kind: str, value: float | None = None,
          detail: str | None = None, stream: str = STREAM) -> tuple[Any, ...]:
    return (START + offset_s, kind, stream, "v", value, detail)


def held_events() -> list[tuple[Any, ...]]:
    """Three viewers join at 1, 2, 3 s; one leaves at 50 s."""
    rows = [event(0.0, "stream_created", detail=json.dumps(
        {"title": "t", "description": "d", "region": "us-west-2"}))]
    rows += [event(float(t), "viewer_connected") for t in (1, 2, 3)]
    rows.append(event(50.0, "viewer_closed"))
    return rows


def api_readings(wrong_from_s: float = math.inf, wrong_until_s: float = math.inf,
                 offset: int = 0) -> list[tuple[Any, ...]]:
    """Every 2 s from 11 s: the true count (+offset), or the stale 3 while wrong."""
    rows = []
    for t in range(11, 100, 2):
        truth = 3 if t < 50 else 2
        stale = wrong_from_s <= t < wrong_until_s
        rows.append(event(float(t), "viewer_count_api", value=float((3 if stale else truth)
                                                                   + offset)))
    return rows


def run_with(tmp_path: Path, events: list[tuple[Any, ...]],
             metrics: list[tuple[Any, ...]] | None = None) -> Any:
    folder = write_run(tmp_path / "run", [], manifest(), events=events, metrics=metrics)
    return load_run(folder)


def test_api_counts_that_match_pass_and_an_offset_fails(tmp_path: Path) -> None:
    good = run_with(tmp_path / "good", held_events() + api_readings())
    assert derived(good, "viewer_count_api_match_ratio").value == 1.0
    assert derived(good, "viewer_count_converge_s").value == 0.0
    bad = run_with(tmp_path / "bad", held_events() + api_readings(offset=1))
    assert derived(bad, "viewer_count_api_match_ratio").value == 0.0
    (figures,) = source_figures(bad)
    assert figures.source == "api" and figures.max_abs_error == 1
    assert figures.longest_mismatch_s == 99 - 11  # never came right


def test_a_count_that_lags_a_leave_is_timed(tmp_path: Path) -> None:
    lagging = run_with(tmp_path, held_events() + api_readings(wrong_from_s=50,
                                                              wrong_until_s=58))
    # Still 3 at 51, 53, 55, 57 (the leave was at 50), right again at 59.
    assert derived(lagging, "viewer_count_converge_s").value == 59 - 51
    ratio = derived(lagging, "viewer_count_api_match_ratio")
    assert ratio.n == 45 and ratio.value == (45 - 4) / 45


def test_database_sessions_and_the_metrics_gauge_are_read_from_labels(tmp_path: Path) -> None:
    metrics = []
    for t in range(11, 100, 5):
        truth = 3.0 if t < 50 else 2.0
        metrics.append((START + t, "postgres", "db_open_viewer_sessions", f"stream={STREAM}",
                        truth))
        metrics.append((START + t, "target", "nova_streaming_stream_viewers",
                        f"stream_id={STREAM}", truth + 1))
        metrics.append((START + t, "target", "nova_streaming_stream_viewers",
                        "stream_id=not-this-run", 7.0))
    run = run_with(tmp_path, held_events(), metrics)
    assert derived(run, "viewer_count_db_match_ratio").value == 1.0
    metrics_ratio = derived(run, "viewer_count_metrics_match_ratio")
    assert metrics_ratio.value == 0.0 and metrics_ratio.n == 18  # other streams ignored
    assert math.isnan(derived(run, "viewer_count_api_match_ratio").value)


def readback(**fields: Any) -> tuple[Any, ...]:
    seen = {"title": "t", "description": "d", "region": "us-west-2", "status": "ended",
            "created_at": iso(0.0), "started_at": iso(6.5), "ended_at": iso(90.2), **fields}
    return event(91.0, "stream_readback", detail=json.dumps(seen))


def lifecycle() -> list[tuple[Any, ...]]:
    return [*held_events(), event(5.0, "publish_started"), event(7.0, "stream_active_api"),
            event(90.0, "publish_stopped")]


def test_readback_of_a_consistent_stream_passes_every_check(tmp_path: Path) -> None:
    run = run_with(tmp_path, [*lifecycle(), readback()])
    for name in ("stream_metadata_preserved_ratio", "stream_timestamps_consistent_ratio",
                 "streams_ended_recorded_ratio"):
        assert derived(run, name).value == 1.0, name
    assert problems(run) == {}


def test_changed_metadata_fails_and_says_what_changed(tmp_path: Path) -> None:
    run = run_with(tmp_path, [*lifecycle(), readback(region="eu-central-1")])
    assert derived(run, "stream_metadata_preserved_ratio").value == 0.0
    assert problems(run) == {STREAM: ["region: sent 'us-west-2', read back 'eu-central-1'"]}


def test_timestamps_out_of_order_or_off_the_harness_clock_fail(tmp_path: Path) -> None:
    cases = {"order": readback(started_at=iso(-1.0), created_at=iso(0.5)),
             "start": readback(started_at=iso(30.0)),
             "end": readback(ended_at=iso(60.0)),
             "never ended": readback(status="active", ended_at=None)}
    for name, row in cases.items():
        run = run_with(tmp_path / name, [*lifecycle(), row])
        assert derived(run, "stream_timestamps_consistent_ratio").value == 0.0, name
    run = run_with(tmp_path / "ended", [*lifecycle(), cases["never ended"]])
    assert derived(run, "streams_ended_recorded_ratio").value == 0.0


def test_active_gauge_against_the_database(tmp_path: Path) -> None:
    def metrics(gauge_total: float) -> list[tuple[Any, ...]]:
        rows = []
        for t in range(10, 60, 5):
            rows.append((START + t, "target", "nova_streaming_active_streams",
                         "region=us-west-2", gauge_total - 1))
            rows.append((START + t, "target", "nova_streaming_active_streams",
                         "region=eu-central-1", 1.0))
            rows.append((START + t + 2, "postgres", "db_active_streams", "", 2.0))
        return rows
    assert derived(run_with(tmp_path / "a", held_events(), metrics(2.0)),
                   "active_streams_gauge_db_match_ratio").value == 1.0
    assert derived(run_with(tmp_path / "b", held_events(), metrics(3.0)),
                   "active_streams_gauge_db_match_ratio").value == 0.0
    assert derived(run_with(tmp_path / "c", held_events()),
                   "active_streams_gauge_db_match_ratio").n == 0


def test_a_gauge_scrape_without_a_database_poll_beside_it_is_not_judged(tmp_path: Path) -> None:
    gauge = {10: 2.0, 15: 2.0, 20: 3.0, 25: 0.0}
    rows = [(START + t, "target", "nova_streaming_active_streams", "region=us-west-2", value)
            for t, value in gauge.items()]
    rows += [(START + t, "postgres", "db_active_streams", "", 2.0) for t in (10.01, 20.01)]
    # 10 is paired and agrees, 15 lies between two polls that agree, 20 is paired and does not;
    # 25 comes after the last poll: what the database held then is unknown.
    found = derived(run_with(tmp_path / "a", held_events(), rows),
                    "active_streams_gauge_db_match_ratio")
    assert (round(found.value, 3), found.n) == (0.667, 3)
