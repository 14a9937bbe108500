"""The live display's windows hold seconds of data, not hours: memory follows the event rate."""

from __future__ import annotations

from pathlib import Path

from harness.run.livestats import KEEP_S, LiveStats
from records.recorder import Recorder


def test_windows_keep_only_recent_rows_and_cycles_are_not_planned_viewers(
        tmp_path: Path) -> None:
    stats = LiveStats(Recorder(tmp_path, flush_interval_s=3600))
    for i in range(20_000):  # 100 per second for 200 s
        ts = 1_800_000_000.0 + i / 100
        stats.add("samples", (ts, ts, "ws_event", "x", 1.0, True, None, None, 10, "l", "u", "s"))
        stats.add("samples", (ts, ts, "http", "get", 1.0, True, 200, None, 10, "l", "u", "s"))
    assert len(stats.ws_events) <= 100 * KEEP_S + 1 and len(stats.http) <= 100 * KEEP_S + 1
    assert len(stats.push_ms) <= 100 * KEEP_S + 1
    for user in ("local-v0", "local-v1", "cycle3-v0", "cycle4-v0"):
        stats.add("events", (1.0, "viewer_connected", "s", user, 0.0, None))
    assert stats.ever_connected == {"local-v0", "local-v1"} and stats.connected["s"] == 4
    stats.recorder.close(compact_parts=False)
