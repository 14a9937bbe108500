"""Results folder → DataFrames. Reads only the folder (it may come from another machine),
tolerates a killed run (parts up to the kill, stray temp files) and skips parts that a
compacted file already covers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from records.documents import (
    DocumentError,
    FaultList,
    FaultRecord,
    Manifest,
    dump,
    read_document,
    read_manifest,
)
from records.errors import InputError
from records.recorder import effective_status, table_files
from records.schema import READING_KINDS, TABLES


def read_table(results_dir: Path | str, name: str) -> pd.DataFrame:
    """One table as a DataFrame (empty with the right columns when nothing was written)."""
    results_dir = Path(results_dir)
    if name not in TABLES:
        raise InputError([f"no table {name!r} in a results folder (tables: "
                          f"{', '.join(TABLES)})"])
    schema = TABLES[name]
    # Repeated strings (kind, name, user, stream, …) as categories: a 4-hour soak's samples
    # then fit in a fraction of the memory of Python string objects.
    text = [f.name for f in schema if pa.types.is_string(f.type)]
    try:
        tables = [pq.read_table(f, read_dictionary=text) for f in table_files(results_dir / name)]
    except FileNotFoundError:  # a running soak compacted parts meanwhile: list them again
        tables = [pq.read_table(f, read_dictionary=text) for f in table_files(results_dir / name)]
    tables = [_with_all_columns(table, schema) for table in tables]
    if not tables:
        frame: pd.DataFrame = schema.empty_table().to_pandas()
        for column in text:
            frame[column] = frame[column].astype("category")
        return frame
    frame = pa.concat_tables(tables).to_pandas()
    return frame


def _with_all_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A part from an older schema version, with the columns added since as nulls."""
    for column in schema:
        if column.name not in table.column_names:
            table = table.append_column(column, pa.nulls(len(table), column.type))
    return table.select(schema.names)


def phase_mask(ts: pd.Series, phases: Sequence[Mapping[str, Any]],
               exclude: Sequence[str], end: pd.Series | None = None) -> pd.Series:
    """True for rows outside every excluded phase. With `end` (epoch s), a row is outside only
    if its whole span [ts, end] is."""
    end = ts if end is None else end
    keep = pd.Series(True, index=ts.index)
    for phase in phases:
        if phase["name"] in exclude:
            keep &= ~((ts < phase["end"]) & (end >= phase["start"]))
    return keep


def operation_end_s(frame: pd.DataFrame) -> pd.Series:
    """When each row's operation ended: for samples whose latency is a duration, `ts` (the
    start) plus it; `ts` for every other row."""
    if "latency_ms" not in frame.columns:
        return frame.ts
    span_s = frame.latency_ms.fillna(0.0).clip(lower=0.0) / 1000.0
    if "kind" in frame.columns:
        span_s = span_s.where(~frame.kind.isin(READING_KINDS), 0.0)
    return frame.ts + span_s


def outside_phases(frame: pd.DataFrame, phases: Sequence[Mapping[str, Any]],
                   exclude: Sequence[str]) -> pd.DataFrame:
    """The rows of `frame` whose operation lies wholly outside the excluded phases: a request
    in flight when a fault began is the fault's, though it started just before it (a SIGKILLed
    service fails the requests it was serving, stamped before the fault's first action)."""
    return frame[phase_mask(frame.ts, phases, exclude, operation_end_s(frame))]


@dataclass
class RunData:
    """A loaded run: manifest, tables, and how much of the planned run the data covers."""

    results_dir: Path
    manifest: Manifest
    samples: pd.DataFrame
    events: pd.DataFrame
    resources: pd.DataFrame
    metrics: pd.DataFrame
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  kw_only=True)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per loaded run: the fault, consistency and trend figures are asked
        for by several thresholds, the report and the charts."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def table(self, name: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self, name)
        return frame

    @property
    def start_s(self) -> float:
        stages = self.manifest.stages
        if stages:
            return stages[0].start
        return float(self.samples.ts.min()) if not self.samples.empty else 0.0

    @property
    def end_s(self) -> float:
        ends = [s.end for s in self.manifest.stages if s.end]
        data_end = float(self.samples.ts.max()) if not self.samples.empty else self.start_s
        return max([data_end, *ends]) if ends else data_end

    @property
    def gaps_s(self) -> float:
        """Seconds between a killed run's last data and its resumption (not measured)."""
        return sum(g.end - g.start for g in self.manifest.gaps)

    @property
    def coverage(self) -> float:
        """Share of the planned duration that the data covers, gaps left out (1.0 for a
        completed run without a resume)."""
        planned = self.manifest.planned.duration_s
        if planned <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.end_s - self.start_s - self.gaps_s) / planned))

    def recorded_phases(self) -> list[dict[str, Any]]:
        """The phases the run recorded (warm-up, steady, cool-down), its gaps and its fault
        windows; a run killed mid-way gets them rebuilt from the data's end. The measured
        recovery after each fault is added by analysis.fault_verdicts.judged_phases."""
        phases = [{"name": p.name, "start": p.start, "end": p.end}
                  for p in self.manifest.phases]
        if not phases and self.manifest.stages:
            warmup = float(self.manifest.scenario["load"]["warmup"])
            phases = [{"name": "warmup", "start": self.start_s, "end": self.start_s + warmup},
                      {"name": "steady", "start": self.start_s + warmup, "end": self.end_s}]
        phases += [{"name": "gap", "start": g.start, "end": g.end} for g in self.manifest.gaps]
        phases += [{"name": "fault", "start": f.start, "end": f.end} for f in self.faults()]
        return phases

    def faults(self) -> list[FaultRecord]:
        """Fault windows with a start and an end: from the manifest, or from
        faults/faults.json when the run died before writing them there."""
        listed = self.manifest.faults
        if not listed:
            try:
                listed = read_document(self.results_dir / "faults" / "faults.json",
                                       FaultList).root
            except DocumentError:
                listed = []
        return [f for f in listed if f.start is not None and f.end is not None]


def load_run(results_dir: Path | str) -> RunData:
    """A results folder (a path or a string) with its manifest and every table."""
    results_dir = Path(results_dir)
    manifest = read_manifest(results_dir)
    # A killed run's manifest still says `running`: judged, it is what it is, crashed.
    manifest = manifest.model_copy(update={"status": effective_status(dump(manifest))})
    return RunData(results_dir, manifest, *(read_table(results_dir, name) for name in
                                            ("samples", "events", "resources", "metrics")))
