"""The Recorder: every producer's rows go to one results folder. Rows are buffered in memory
and written as complete Parquet part files every `flush_interval_s` by a native thread (never on
the gevent loop), each to a temp name then renamed, so a killed run loses at most one interval
and never leaves a corrupt part. `close()` compacts each table's parts into one file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from records.errors import RecordError
from records.schema import TABLES

_COMPACT_PREFIX = "compact-"
_COMPACT = re.compile(r"^compact-(\d+)-(\d+)\.parquet$")
_PART = re.compile(r"^part-(\d+)\.parquet$")
COMPACT_TIMEOUT_S = 300.0
CONVERT_ROWS = 1000  # rows converted per GIL-holding call (TableWriter._batch)
TWIN_COLUMNS = {"intended_ts": "ts"}  # column: the earlier column it usually equals


def _native_submit() -> Callable[[Callable[[], None]], Any]:
    """Run writes on a real OS thread: under gevent's monkey-patching ordinary threads are
    greenlets, and a Parquet flush on the loop would freeze the load for tens of ms."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            from gevent.threadpool import ThreadPool

            # One thread: jobs run in the order submitted, so a compaction sees every part
            # flushed before it.
            pool = ThreadPool(maxsize=1)
            return lambda fn: pool.spawn(fn)
    except ImportError:
        pass
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
    return executor.submit


def atomic_write_json(path: Path, document: dict[str, Any] | list[Any]) -> None:
    # Strings, not Path.with_name: pathlib interns each new name (harness/monitor/processes.py
    # says why that matters in a soak), and the status file is rewritten every few seconds.
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(json.dumps(document, indent=2, default=str))
    os.replace(tmp, path)


def writer_identity() -> dict[str, Any]:
    """Who writes a `running` manifest or status file: host, pid and the process's start time
    (a pid alone can be reused), so a reader can tell a live run from a killed one."""
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": me.pid, "started_at": me.create_time()}


def effective_status(document: dict[str, Any]) -> str | None:
    """The document's `status`, except that `running` written by a process that is gone
    (same host, its pid dead or reused) is `crashed`. From another host a `running` status
    cannot be checked and is returned as written."""
    status = document.get("status")
    writer = document.get("writer")
    if status != "running" or not isinstance(writer, dict) or \
            writer.get("host") != socket.gethostname():
        return None if status is None else str(status)
    try:
        started_at = psutil.Process(int(writer["pid"])).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return "crashed"
    return "running" if abs(started_at - float(writer.get("started_at", 0))) < 0.5 else "crashed"


class TableWriter:
    """Buffered rows of one table and its numbered part files. Rows are kept end to end in one
    list of values (`width` per row), not as a list of tuples: the tuples a producer builds are
    then short-lived (freed at once, reused from Python's free list) instead of tens of
    thousands kept for seconds, and each column is one strided slice at write time. Columns
    that do not vary within a slice, and `intended_ts` where it equals `ts`, are not converted
    value by value (`_array`, `TWIN_COLUMNS`)."""

    def __init__(self, folder: Path, schema: pa.Schema, max_rows: int = 50_000) -> None:
        self.folder = folder
        self.schema = schema
        self.width = len(schema)
        self.values: list[Any] = []
        self.full_at = max_rows * self.width  # values buffered before a flush is forced
        # A column usually equal to an earlier one (`intended_ts` to `ts` for every closed-model
        # row) reuses that column's array when it is.
        self.twins = {schema.get_field_index(name): schema.get_field_index(earlier)
                      for name, earlier in TWIN_COLUMNS.items() if name in schema.names}
        # Numbers go on after every part and compacted range already there (a resumed run
        # writes into the same folder; a reused number would be hidden by a compacted range).
        self.next_part = 1 + max([*(_part_number(p) for p in folder.glob("part-*.parquet")),
                                  *(_compact_last(p) for p in folder.glob("compact-*.parquet"))],
                                 default=0)
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, row: Sequence[Any]) -> None:
        # A row of another width would shift every later row's columns: refused here, where
        # the producer is still on the stack.
        if len(row) != self.width:
            raise RecordError(f"{self.folder.name}: a row of {len(row)} values, the table has "
                              f"{self.width} columns")
        self.values.extend(row)

    def buffered_rows(self) -> int:
        return len(self.values) // self.width

    def take(self) -> list[Any]:
        values, self.values = self.values, []
        return values

    def write_part(self, values: list[Any], number: int) -> None:
        step = CONVERT_ROWS * self.width
        table = pa.Table.from_batches([self._batch(values[start:start + step])
                                       for start in range(0, len(values), step)],
                                      schema=self.schema)
        # Strings, not Path: every part would intern two new names (atomic_write_json).
        final = os.path.join(self.folder, f"part-{number:06d}.parquet")
        tmp = os.path.join(self.folder, f".part-{number:06d}.parquet.tmp")
        # No min/max statistics in parts: nothing reads them while a run is on, and they cost
        # a sixth of the write; compacted files have them, for readers that filter on `ts`.
        pq.write_table(table, tmp, **parquet_options(self.schema, statistics=False))
        os.replace(tmp, final)

    def _batch(self, values: list[Any]) -> pa.RecordBatch:
        # Converting Python values holds the GIL for the whole call: in slices, the event
        # loop's thread gets it back between them (20,000 rows at once stalled 10,000 viewers'
        # loop past 300 ms at p99, bench/ws_clients.py).
        columns = [values[column::self.width] for column in range(self.width)]
        arrays: list[pa.Array] = []
        for column, field in enumerate(self.schema):
            twin = self.twins.get(column)
            if twin is not None and columns[column] == columns[twin]:
                arrays.append(arrays[twin])
            else:
                arrays.append(_array(columns[column], field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _array(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    """One column as Arrow. A column holding one value throughout (the process's `worker`;
    the `kind`, `status` and `error` of a run of viewer events) is built from that value:
    `list.count` compares by identity first, ~3 ns a row against 30-90 for converting it.
    Values equal to the first but of another type (1.0 or True where the first is 1) are
    stored as the first would be, where Arrow converting them one by one would refuse the
    mix of int and bool."""
    first = values[0] if values else None
    # The middle and the last value first: a column that varies is then given up in two
    # comparisons, not a count of the whole slice (real traffic mixes kinds, events, streams).
    if values[-1:] != [first] or values[len(values) // 2] != first \
            or values.count(first) != len(values):
        return pa.array(values, type=arrow_type)
    if first is None:
        return pa.nulls(len(values), arrow_type)
    return pa.repeat(pa.scalar(first, arrow_type), len(values))


def parquet_options(schema: pa.Schema, statistics: bool = True) -> dict[str, Any]:
    """How parts and compacted files are written. Dictionary encoding for the string columns
    only: timestamps and latencies are nearly all distinct, so their dictionaries were built
    and then abandoned, which cost 0.2 µs of the writer's 0.8 per row and made the files
    larger (18.5 against 13.4 bytes per ws_event row, zstd)."""
    return {"compression": "zstd", "write_statistics": statistics,
            "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)]}


def _part_number(path: Path) -> int:
    match = _PART.match(path.name)
    return int(match[1]) if match else 0


def _compact_last(path: Path) -> int:
    match = _COMPACT.match(path.name)
    return int(match[2]) if match else 0


def table_files(folder: Path) -> list[Path]:
    """The readable files of one table (compacted files and the parts they do not cover), in
    write order, without double counting."""
    if not folder.is_dir():
        return []
    covered: list[tuple[int, int]] = []
    compacted, parts = [], []
    for path in folder.iterdir():
        if match := _COMPACT.match(path.name):
            covered.append((int(match[1]), int(match[2])))
            compacted.append((int(match[1]), path))
        elif match := _PART.match(path.name):
            parts.append((int(match[1]), path))
    kept = [(n, p) for n, p in parts if not any(lo <= n <= hi for lo, hi in covered)]
    return [p for _, p in sorted(compacted + kept)]


def compact(folder: Path, upto: int | None = None) -> Path | None:
    """Merge the parts of a table (those numbered ≤ `upto`) into
    `compact-FIRST-LAST.parquet`; readers skip parts that a compacted file covers, so a crash
    between writing it and deleting them loses nothing."""
    parts = sorted((p for p in folder.glob("part-*.parquet")
                    if upto is None or _part_number(p) <= upto), key=_part_number)
    if len(parts) < 2:
        return None
    first, last = _part_number(parts[0]), _part_number(parts[-1])
    target = folder / f"{_COMPACT_PREFIX}{first:06d}-{last:06d}.parquet"
    tmp = folder / f".{target.name}.tmp"
    schema = pq.read_schema(parts[0])
    with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part))
    os.replace(tmp, target)
    for part in parts:
        part.unlink()
    return target


class Recorder:
    """Thread-safe sink for the four tables; `flush()` may be called from any greenlet."""

    def __init__(self, results_dir: Path, flush_interval_s: float = 2.0,
                 max_buffered_rows: int = 50_000) -> None:
        self.results_dir = results_dir
        self.flush_interval_s = flush_interval_s
        self.writers = {name: TableWriter(results_dir / name, schema, max_buffered_rows)
                        for name, schema in TABLES.items()}
        self._lock = threading.Lock()
        # Arrow's first conversion of Python objects imports pandas (to recognise its types):
        # 0.37 s here, so before any load rather than on the writer thread during the ramp,
        # competing with the event loop for the GIL.
        pa.array([0.0])
        self._submit = _native_submit()
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()
        self.rows_seen = dict.fromkeys(TABLES, 0)
        self.write_errors: list[str] = []
        # Set while no compaction child runs: close() must not compact the same parts at once
        # (two overlapping compacted ranges would hold the same rows twice).
        self._no_compaction = threading.Event()
        self._no_compaction.set()

    def add(self, table: str, row: Sequence[Any]) -> None:
        writer = self.writers[table]
        writer.add(row)
        if len(writer.values) >= writer.full_at:
            self.flush()

    def add_many(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows shipped by a worker: one that does not fit (a worker of another harness
        version) is counted in `write_errors`, not raised into Locust's message handler."""
        writer, misfits = self.writers[table], 0
        for row in rows:
            if len(row) == writer.width:
                writer.values.extend(row)
            else:
                misfits += 1
        if misfits:
            self.write_errors.append(f"{table}: {misfits} rows from a worker did not have the "
                                     f"table's {writer.width} columns; not recorded")

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Hand every buffered row to the writer thread as new part files."""
        self._last_flush = time.monotonic()
        with self._lock:
            batches = []
            for name, writer in self.writers.items():
                self.rows_seen[name] += writer.buffered_rows()
                values = writer.take()
                if values:
                    batches.append((writer, values, writer.next_part))
                    writer.next_part += 1
        for writer, values, number in batches:
            self._pending.append(self._submit(self._guarded(writer, values, number)))
        self._pending = [f for f in self._pending if not _done(f)]

    def wait_for_writes(self) -> None:
        """Block until every part handed to the writer so far is written (or has failed, which
        `write_errors` reports)."""
        for future in list(self._pending):
            with contextlib.suppress(Exception):
                future.get() if hasattr(future, "get") else future.result()
        self._pending = [f for f in self._pending if not _done(f)]

    def compact_now(self) -> None:
        """Merge each table's parts written so far (a soak's folder would otherwise hold
        thousands) in a child process (records/compactor.py), after the writes handed over
        before the call have finished. Blocks its caller (a greenlet of its own in a run);
        a call while one is running does nothing."""
        if not self._no_compaction.is_set():
            return
        self._no_compaction.clear()
        try:
            self.wait_for_writes()
            args = [str(arg) for writer in self.writers.values()
                    for arg in (writer.folder, writer.next_part - 1)]
            done = subprocess.run([sys.executable, "-m", "records.compactor", *args],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=COMPACT_TIMEOUT_S, check=False)
            if done.returncode != 0:  # the parts stay readable; the next compaction retries
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                self.write_errors.append(f"compaction exited {done.returncode}: {tail}")
        except subprocess.TimeoutExpired:
            self.write_errors.append(f"compaction took over {COMPACT_TIMEOUT_S:.0f} s")
        finally:
            self._no_compaction.set()

    def _guarded(self, writer: TableWriter, values: list[Any],
                 number: int) -> Callable[[], None]:
        def run() -> None:
            try:
                writer.write_part(values, number)
            except Exception as exc:  # a bad row must not kill the run; it is reported
                self.write_errors.append(f"{writer.folder.name} part {number}: {exc}")
        return run

    def close(self, compact_parts: bool = True) -> None:
        """Flush, wait for the writer, and compact each table."""
        self.flush()
        self.wait_for_writes()
        self._no_compaction.wait(COMPACT_TIMEOUT_S)
        if compact_parts:
            for writer in self.writers.values():
                compact(writer.folder)


def _done(future: Any) -> bool:
    if hasattr(future, "ready"):
        return bool(future.ready())
    return bool(future.done())
