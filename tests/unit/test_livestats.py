"""The live display's windows hold seconds of data, not hours: memory follows the event rate."""

from __future__ import annotations

from pathlib import Path

from harness.run.livestats import KEEP_S, LiveStats
from records.recorder import Recorder
from records.schema import HTTP, WS_EVENT, EventRow, SampleRow


def test_windows_keep_only_recent_rows_and_cycles_are_not_planned_viewers(
        tmp_path: Path) -> None:
    stats = LiveStats(Recorder(tmp_path, flush_interval_s=3600))
    for i in range(20_000):  # 100 per second for 200 s
        ts = 1_800_000_000.0 + i / 100
        stats.add(SampleRow(ts, ts, WS_EVENT, "x", 1.0, True, None, None, 10, "l", "u", "s"))
        stats.add(SampleRow(ts, ts, HTTP, "get", 1.0, True, 200, None, 10, "l", "u", "s"))
    assert len(stats.ws_events) <= 100 * KEEP_S + 1 and len(stats.http) <= 100 * KEEP_S + 1
    assert len(stats.push_ms) <= 100 * KEEP_S + 1
    for user in ("local-v0", "local-v1", "cycle3-v0", "cycle4-v0"):
        stats.add(EventRow(1.0, "viewer_connected", "s", user, 0.0, None))
    assert stats.ever_connected == {"local-v0", "local-v1"} and stats.connected["s"] == 4
    stats.recorder.close(compact_parts=False)


def test_rows_a_worker_shipped_as_lists_are_counted_too(tmp_path: Path) -> None:
    stats = LiveStats(Recorder(tmp_path, flush_interval_s=3600))
    stats.add_many("events", [[1.0, "viewer_connected", "s", "local-v0", None, None],
                              [2.0, "viewer_connected", "s"]])  # too short: not observed
    assert stats.connected["s"] == 1 and stats.ever_connected == {"local-v0"}
    assert stats.recorder.write_errors  # the short row was refused, not written
    stats.recorder.close(compact_parts=False)
