"""Synthetic results folders with known distributions, written through the real Recorder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from records.recorder import Recorder, atomic_write_json
from records.schema import RESULTS_SCHEMA_VERSION

START = 1_800_000_000.0


def manifest(duration_s: float = 100.0, viewers: int = 0, status: str = "completed",
             **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION, "run_id": "synthetic", "status": status,
        "scenario": {"name": "synthetic", "load": {"warmup": 0.0}, "thresholds": None},
        "planned": {"viewers": viewers, "streams": 0, "duration_s": duration_s},
        "stages": [{"name": "hold", "start": START, "end": START + duration_s}],
        "phases": [{"name": "steady", "start": START, "end": START + duration_s}],
        "validity": {"saturated": False, "saturated_seconds": 0},
        "target": {"api_base": "http://127.0.0.1:1"}, **extra,
    }


def http_rows(latencies_ms: Iterable[float], start_s: float = 0.0, step_s: float = 0.1,
              ok: bool = True, name: str = "list_active") -> list[tuple[Any, ...]]:
    rows = []
    for i, latency in enumerate(latencies_ms):
        ts = START + start_s + i * step_s
        rows.append((ts, ts, "http", name, float(latency), ok, 200 if ok else 500, None, 10,
                     "local", "api", None))
    return rows


def write_run(folder: Path, samples: list[tuple[Any, ...]], document: dict[str, Any],
              events: list[tuple[Any, ...]] | None = None, close: bool = True,
              metrics: list[tuple[Any, ...]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(folder, flush_interval_s=3600)
    for row in samples:
        recorder.add("samples", row)
    for row in events or []:
        recorder.add("events", row)
    for row in metrics or []:
        recorder.add("metrics", row)
    recorder.close(compact_parts=close)
    atomic_write_json(folder / "manifest.json", document)
    return folder


def thresholds_file(folder: Path, body: str) -> Path:
    path = folder / "t.yaml"
    path.write_text("name: test\nthresholds:\n" + body)
    return path
