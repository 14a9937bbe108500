"""The Recorder writes complete, atomic part files; compaction loses and duplicates nothing;
the reader tolerates a killed run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import read_table
from harness.config.monitors import RESOURCE_FIELDS
from records.documents import (
    DocumentError,
    SchemaVersionError,
    Status,
    read_document,
    read_manifest,
)
from records.errors import RecordError
from records.recorder import Recorder, compact, table_files
from records.schema import (
    RESULTS_SCHEMA_VERSION,
    ROW_TYPES,
    TABLES,
    EventRow,
    MetricRow,
    ResourceRow,
    table_of,
)


def sample(i: int) -> tuple[object, ...]:
    ts = time.time()
    return (ts, ts, "http", "get", float(i), i % 2 == 0, 200, None, 10, "local", "u", "s")


def test_flush_writes_parts_and_close_compacts(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=60)
    for i in range(10):
        recorder.add("samples", sample(i))
    recorder.flush()
    for i in range(10, 25):
        recorder.add("samples", sample(i))
    recorder.flush()
    recorder.close(compact_parts=False)
    parts = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert parts == ["part-000001.parquet", "part-000002.parquet"]
    frame = read_table(tmp_path, "samples")
    assert list(frame["latency_ms"]) == [float(i) for i in range(25)]
    assert compact(tmp_path / "samples") is not None
    assert [p.name for p in (tmp_path / "samples").iterdir()] == [
        "compact-000001-000002.parquet"]
    assert list(read_table(tmp_path, "samples")["latency_ms"]) == [float(i) for i in range(25)]


def test_buffer_limit_forces_a_flush(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=3600, max_buffered_rows=100)
    for i in range(250):
        recorder.add("samples", sample(i))
    recorder.close(compact_parts=False)
    assert len(table_files(tmp_path / "samples")) == 3
    assert len(read_table(tmp_path, "samples")) == 250
    assert recorder.rows_seen["samples"] == 250


def test_uniform_and_twin_columns_read_back_exactly(tmp_path: Path) -> None:
    # Columns with one value throughout a chunk, and `intended_ts` equal to `ts`, are built
    # without converting each value; a chunk where they vary is converted value by value.
    nan = float("nan")
    uniform: list[tuple[object, ...]] = [
        (10.0 + i, 10.0 + i, "ws_event", "ping", nan, True, None, None, 7, "local", f"v{i}", "s")
        for i in range(5)]
    varied: list[tuple[object, ...]] = [
        (20.0, 19.5, "http", "get", 1, False, 503, "unavailable", 0, "local", "v1", None),
        (21.0, 21.0, "http", "get", 2.5, True, 200, None, 10, "local", "v2", "s")]
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    for row in uniform:
        recorder.add("samples", row)
    recorder.flush()
    for row in varied:
        recorder.add("samples", row)
    recorder.close(compact_parts=False)
    assert recorder.write_errors == []
    frame = read_table(tmp_path, "samples")
    assert list(frame.intended_ts) == [10.0, 11.0, 12.0, 13.0, 14.0, 19.5, 21.0]
    assert frame.latency_ms[:5].isna().all() and list(frame.latency_ms[5:]) == [1.0, 2.5]
    assert list(frame.kind) == ["ws_event"] * 5 + ["http"] * 2
    assert frame.status[:5].isna().all() and list(frame.status[5:]) == [503, 200]
    assert frame.error[:5].isna().all() and frame.error[5] == "unavailable"
    assert list(frame.ok) == [True] * 5 + [False, True]
    assert list(frame.user) == [f"v{i}" for i in range(5)] + ["v1", "v2"]
    assert frame.stream[6] == "s" and frame.stream.isna().tolist() == [False] * 5 + [True, False]
    for part in table_files(tmp_path / "samples"):
        assert pq.read_schema(part).equals(TABLES["samples"], check_metadata=False)


def test_a_column_that_varies_only_between_its_ends_and_middle_is_converted_value_by_value(
        ) -> None:
    from records.recorder import _array

    assert _array(["s", "x", "s", "s", "s"], pa.string()).to_pylist() == ["s", "x", "s", "s", "s"]
    assert _array([None, None, 3], pa.int32()).to_pylist() == [None, None, 3]
    assert _array([None, None], pa.int32()).null_count == 2
    assert _array([2.5] * 3, pa.float64()).to_pylist() == [2.5] * 3
    assert _array([], pa.string()).to_pylist() == []


def test_parts_skip_column_statistics_and_compacted_files_keep_them(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    for batch in range(2):
        for i in range(3):
            recorder.add("samples", sample(i + 3 * batch))
        recorder.flush()
    recorder.close(compact_parts=False)
    part = table_files(tmp_path / "samples")[0]
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).statistics is None
    compacted = compact(tmp_path / "samples")
    assert compacted is not None
    metadata = pq.ParquetFile(compacted).metadata  # one row group per part
    latency_ms = [metadata.row_group(g).column(4).statistics for g in range(2)]
    assert [(s.min, s.max) for s in latency_ms] == [(0.0, 2.0), (3.0, 5.0)]


def test_rows_shipped_as_lists_are_written_like_tuples(tmp_path: Path) -> None:
    # A worker's rows reach the master as lists (Locust's messaging has no tuples).
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    recorder.add("samples", sample(0))
    recorder.add_many("samples", [list(sample(i)) for i in range(1, 4)])
    recorder.close(compact_parts=False)
    assert recorder.write_errors == []
    assert list(read_table(tmp_path, "samples")["latency_ms"]) == [0.0, 1.0, 2.0, 3.0]


def test_a_row_that_does_not_fit_its_table_is_refused_and_shifts_nothing(
        tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    recorder.add("samples", sample(0))
    with pytest.raises(RecordError, match="samples: a row of 11 values, the table has 12"):
        recorder.add("samples", sample(1)[:-1])
    # From a worker (another harness version): counted, not raised into Locust's handler.
    recorder.add_many("samples", [list(sample(2)), [*sample(3), "extra"], sample(4)])
    recorder.close(compact_parts=False)
    assert recorder.write_errors == [
        "samples: 1 rows from a worker did not have the table's 12 columns; not recorded"]
    frame = read_table(tmp_path, "samples")
    assert list(frame["latency_ms"]) == [0.0, 2.0, 4.0]
    assert list(frame["status"]) == [200] * 3 and list(frame["stream"]) == ["s"] * 3
    assert recorder.rows_seen["samples"] == 3


def test_killed_run_leaves_readable_parts(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    for i in range(5):
        recorder.add("samples", sample(i))
    recorder.flush()
    recorder.close(compact_parts=False)
    # What a kill mid-write leaves: a temp file, and (crash during compaction) a compacted
    # file next to the parts it covers.
    (tmp_path / "samples" / ".part-000002.parquet.tmp").write_bytes(b"PAR1 half a file")
    (tmp_path / "samples" / "part-000001.parquet").rename(
        tmp_path / "samples" / "compact-000001-000001.parquet")
    Recorder(tmp_path)  # a resumed recorder continues numbering after existing parts
    frame = read_table(tmp_path, "samples")
    assert len(frame) == 5


def test_compaction_crash_does_not_double_count(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, flush_interval_s=3600)
    for batch in range(3):
        for _ in range(4):
            recorder.add("events", (time.time(), "x", None, None, float(batch), None))
        recorder.flush()
    recorder.close(compact_parts=False)
    folder = tmp_path / "events"
    parts = sorted(folder.glob("part-*.parquet"))
    compacted = compact(folder)
    assert compacted is not None
    # Re-create the parts as if the crash hit before they were deleted.
    for part in parts:
        shutil.copy(compacted, part)
    assert len(read_table(tmp_path, "events")) == 12


def test_missing_table_reads_empty_with_columns(tmp_path: Path) -> None:
    frame = read_table(tmp_path, "resources")
    assert frame.empty and "rss_bytes" in frame.columns


def test_a_part_from_schema_1_reads_with_the_newer_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq


    older = pa.schema([f for f in TABLES["resources"]
                       if f.name not in ("pss_bytes", "anon_pss_bytes")])
    (tmp_path / "resources").mkdir()
    row = {name: [1] for name in older.names} | {"host": ["h"], "role": ["api"]}
    pq.write_table(pa.table(row, schema=older), tmp_path / "resources" / "part-000001.parquet")
    recorder = Recorder(tmp_path)
    recorder.add("resources", (2.0, "h", "api", 1, 1.0, 10, 0.1, 0, 0, 1, 0, 7, 5))
    recorder.close(compact_parts=False)
    frame = read_table(tmp_path, "resources")
    assert list(frame.columns) == TABLES["resources"].names
    assert frame.pss_bytes.isna().tolist() == [True, False]
    assert frame.anon_pss_bytes.isna().tolist() == [True, False]


def test_bad_row_is_reported_not_raised(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    recorder.add("samples", ("not a time",) * 12)
    recorder.close()
    assert recorder.write_errors and "samples part 1" in recorder.write_errors[0]
    assert read_table(tmp_path, "samples").empty


@pytest.mark.parametrize("name", ["samples", "events", "resources", "metrics"])
def test_every_table_has_ts_first(name: str) -> None:

    assert TABLES[name].names[0] == "ts"


def test_periodic_compaction_and_a_resumed_recorder_lose_nothing(tmp_path: Path) -> None:
    """A soak compacts while it writes; a resumed run writes into the same folder after it."""
    recorder = Recorder(tmp_path, flush_interval_s=60)
    for batch in range(5):
        for i in range(batch * 10, batch * 10 + 10):
            recorder.add("samples", sample(i))
        recorder.flush()
        if batch == 2:
            recorder.compact_now()
    recorder.close(compact_parts=False)
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names[0].startswith("compact-000001-") and names[-1] == "part-000005.parquet"
    resumed = Recorder(tmp_path, flush_interval_s=60)
    assert resumed.writers["samples"].next_part == 6
    for i in range(50, 60):
        resumed.add("samples", sample(i))
    resumed.close()
    assert list(read_table(tmp_path, "samples").latency_ms) == [float(i) for i in range(60)]
    assert recorder.write_errors == [] and resumed.write_errors == []


def test_logs_rotate_past_their_limit(tmp_path: Path) -> None:
    from harness.runtime.logfiles import LOG_MAX_BYTES, rotated

    log = tmp_path / "ffmpeg.log"
    assert rotated(log) == log and not log.exists()  # nothing yet: nothing to rotate
    log.write_bytes(b"x" * 10)
    rotated(log)
    assert log.exists() and not (tmp_path / "ffmpeg.log.1").exists()
    log.write_bytes(b"y" * (LOG_MAX_BYTES + 1))
    rotated(log)
    assert not log.exists() and (tmp_path / "ffmpeg.log.1").stat().st_size == LOG_MAX_BYTES + 1


def test_a_running_status_whose_writer_is_gone_reads_as_crashed() -> None:
    import subprocess
    import sys

    from records.recorder import effective_status, writer_identity

    writer = writer_identity()
    alive = {"status": "running", "writer": writer}
    assert effective_status(alive) == "running"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started_at = psutil.Process(child.pid).create_time()
    child.wait()
    gone_writer = {**writer, "pid": child.pid, "started_at": started_at}
    gone = {"status": "running", "writer": gone_writer}
    assert effective_status(gone) == "crashed"
    # The pid reused by another process (this one, started at another time): still crashed.
    reused = {"status": "running", "writer": {**writer, "started_at": 1.0}}
    assert effective_status(reused) == "crashed"
    elsewhere = {"status": "running", "writer": {**gone_writer, "host": "another-host"}}
    assert effective_status(elsewhere) == "running"
    assert effective_status({"status": "completed", "writer": gone_writer}) == "completed"


def test_typed_rows_are_the_tables_columns_in_order() -> None:
    for table, row_type in ROW_TYPES.items():
        assert row_type._fields == tuple(TABLES[table].names), table
    assert ResourceRow._fields[4:] == RESOURCE_FIELDS  # the PromQL fields a query may fill


def test_a_row_goes_to_its_own_table() -> None:
    assert table_of(EventRow(1.0, "viewer_connected", "s", "u", None, None)) == "events"
    assert table_of(MetricRow(1.0, "host", "x", "", 1.0)) == "metrics"


@pytest.mark.parametrize(("version", "readable"), [(1, True), (RESULTS_SCHEMA_VERSION, True),
                                                   (RESULTS_SCHEMA_VERSION + 1, False),
                                                   (None, False)])
def test_a_manifest_of_another_format_version_is_refused_with_a_hint(
        tmp_path: Path, version: int | None, readable: bool) -> None:
    document = {"run_id": "r", "status": "completed", "extra_field": 1}
    if version is not None:
        document["schema_version"] = version
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    if readable:
        manifest = read_manifest(tmp_path)
        assert manifest.run_id == "r" and manifest.model_extra == {"extra_field": 1}
        return
    with pytest.raises(SchemaVersionError) as caught:
        read_manifest(tmp_path)
    assert caught.value.exit_code == 2 and caught.value.hint and "harness" in caught.value.hint
    assert len(str(caught.value).splitlines()) == 1


def test_a_malformed_document_names_its_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"run_id": "r", "status": "running"}))
    with pytest.raises(DocumentError, match=r"status.json: not a Status document "
                                            r"\(updated_at: Field required\)"):
        read_document(tmp_path / "status.json", Status)
