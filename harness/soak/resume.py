"""Continuing a soak that died (`nova-harness soak --resume RESULTS_DIR`): what the folder
says about the earlier run — its scenario and overrides, its stages (the last one closed where
its data ends), how many cycles it completed and how much of the planned time is left. The
time between the data's end and the resumption is recorded as a gap (judged as no phase)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from records.documents import DocumentError, Manifest, read_manifest
from records.errors import InputError
from records.recorder import table_files
from records.schema import RESULTS_SCHEMA_VERSION

# What a run needs beside its ramps: the same rule as `--duration`.
MIN_HOLD_S = 5.0


@dataclass(frozen=True)
class Resume:
    results_dir: Path
    run_id: str
    scenario_path: Path
    overrides: dict[str, str]
    started_at: float
    stages: list[dict[str, Any]]
    gaps: list[dict[str, float]]
    planned_s: float
    remaining_s: float
    cycles_done: int
    manifest: Manifest = field(repr=False)


def _data_end(results_dir: Path) -> float:
    """The newest timestamp in any table's parts (what a killed run really recorded)."""
    newest = 0.0
    for table in ("samples", "events", "resources", "metrics"):
        for part in table_files(results_dir / table):
            column = pq.read_table(part, columns=["ts"]).column("ts")
            if len(column):
                newest = max(newest, float(pc.max(column).as_py()))
    return newest


def _cycles_done(results_dir: Path) -> int:
    done = 0
    for part in table_files(results_dir / "events"):
        table = pq.read_table(part, columns=["type", "value"]).to_pydict()
        done = max([done, *(int(v) for t, v in zip(table["type"], table["value"], strict=True)
                            if t == "cycle_idle_end" and v is not None)])
    return done


def prepare_resume(results_dir: Path) -> Resume:
    """Everything needed to continue the run in `results_dir`; InputError when it cannot be."""
    try:
        manifest = read_manifest(results_dir)
    except DocumentError as exc:
        raise InputError([f"--resume: {exc}"], hint=exc.hint) from None
    problems = []
    if manifest.schema_version != RESULTS_SCHEMA_VERSION:
        problems.append(f"--resume {results_dir}: written in results format "
                        f"{manifest.schema_version}, this harness writes "
                        f"{RESULTS_SCHEMA_VERSION}; `nova-harness analyze` still reads it")
    if manifest.status == "completed":
        problems.append(f"--resume {results_dir}: that run completed; nothing to continue")
    if not manifest.stages:
        problems.append(f"--resume {results_dir}: the run never started its load")
    scenario_path = Path(manifest.scenario_file or "")
    if not scenario_path.is_file():
        problems.append(f"--resume {results_dir}: its scenario {scenario_path} is gone")
    if problems:
        raise InputError(problems, hint="--resume continues an aborted or killed run")
    data_end = _data_end(results_dir)
    if data_end <= 0:
        raise InputError([f"--resume {results_dir}: no rows recorded in any table"],
                         hint="--resume continues a run that recorded data before it died")
    stages = [stage.model_dump() for stage in manifest.stages]
    if stages[-1].get("end") is None or stages[-1]["end"] > data_end:
        stages[-1]["end"] = max(data_end, float(stages[-1]["start"]))
    planned = manifest.planned.duration_s
    covered = sum(float(s["end"]) - float(s["start"]) for s in stages)
    remaining = planned - covered
    load = manifest.scenario.get("load") or {}
    needed = float(load.get("ramp", 10.0)) + float(load.get("ramp_down", 5.0)) + MIN_HOLD_S
    if remaining < needed:
        raise InputError([f"--resume {results_dir}: only {remaining:.0f} s of the planned "
                          f"{planned:.0f} s are left, less than its ramp, ramp-down and "
                          f"{MIN_HOLD_S:.0f} s of hold ({needed:.0f} s)"])
    gaps = [gap.model_dump() for gap in manifest.gaps]
    return Resume(results_dir, manifest.run_id, scenario_path, dict(manifest.overrides),
                  float(manifest.started_at or stages[0]["start"]),
                  stages, [*gaps, {"start": data_end, "end": time.time()}],
                  planned, remaining, _cycles_done(results_dir), manifest)


def segment_phases(stages: list[dict[str, Any]], warmup_s: float,
                   cooldown_s: float) -> list[dict[str, Any]]:
    """Warm-up at the start of every segment (each starts with a `ramp` stage: a resumed run
    ramps again), cool-down at the end of the last, steady between; the gaps between
    segments are the manifest's `gaps`."""
    if not stages:
        return []
    starts = [i for i, stage in enumerate(stages) if stage["name"] == "ramp"] or [0]
    phases = []
    for number, first in enumerate(starts):
        final = number == len(starts) - 1
        last = len(stages) - 1 if final else starts[number + 1] - 1
        start, end = stages[first]["start"], stages[last].get("end") or time.time()
        warm_end = min(start + warmup_s, end)
        # The ramp-down is never judged: its closing sockets are the harness's doing.
        ramp_down = [s["start"] for s in stages[first:last + 1] if s["name"] == "ramp_down"]
        cool_start = max(warm_end, min([end - cooldown_s, *ramp_down])) if final else end
        phases += [{"name": "warmup", "start": start, "end": warm_end},
                   {"name": "steady", "start": warm_end, "end": cool_start}]
        if final:
            phases.append({"name": "cooldown", "start": cool_start, "end": end})
    return phases
