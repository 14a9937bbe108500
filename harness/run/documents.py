"""The run's `manifest.json` and `status.json`, built through records' models so that a
misnamed or mistyped field fails in the writer, not in a later analysis."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import TYPE_CHECKING, Any

import psutil
import pyarrow as pa

from harness import __version__
from harness.config.redact import redact_credentials
from records.documents import Manifest, Status, Writer, dump
from records.provenance import file_sha256
from records.recorder import writer_identity
from records.schema import RESULTS_SCHEMA_VERSION

if TYPE_CHECKING:
    from harness.run.engine import Run


def host_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total,
            "python": platform.python_version(),
            "arrow_pool": pa.default_memory_pool().backend_name}


def manifest(run: Run, status: str, **extra: Any) -> dict[str, Any]:
    """The manifest as written; `extra` adds the end-of-run fields (validity, rows, …)."""
    s, resumed, target = run.scenario, run.options.resume, run.target
    document: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run_id": run.run_id,
        "status": status,
        "writer": writer_identity(),
        "stack_started_by_run": target.stack_identity if target.started_stack else None,
        "harness_version": __version__,
        "harness_commit": run.harness_commit,
        "scenario_sha256": file_sha256(run.options.scenario_path),
        "scenario_file": str(run.options.scenario_path),
        "scenario": redact_credentials(s.model_dump(mode="json")),
        "overrides": redact_credentials({k: str(v) for k, v in run.options.overrides.items()}),
        "profile": run.profile.name,
        "target": run.endpoints_public,
        "host": host_facts(),
        "planned": {"viewers": s.planned_viewers, "streams": s.streams.count,
                    "duration_s": resumed.planned_s if resumed else s.load.total_s,
                    "api_rate_per_s": s.api_clients.rate_per_s,
                    "workers": run.options.worker_count},
        "started_at": resumed.started_at if resumed else run.started_at,
        "stages": run.all_stages(),
        "phases": run.phases(),
        "gaps": resumed.gaps if resumed else [],
        "faults": run.chaos.faults if run.chaos else [],
        "distributed": _distributed(run),
    }
    document.update(extra)
    return dump(Manifest.model_validate(document))


def _distributed(run: Run) -> dict[str, Any] | None:
    o = run.options
    if not o.worker_count:
        return None
    return {"master_address": run.master_address, "local_workers": o.workers,
            "expected_workers": o.expect_workers,
            "max_clock_offset_ms": run.scenario.distributed.max_clock_offset_ms,
            "workers": run.roster.records() if run.roster else []}


def status(run: Run, status: str) -> dict[str, Any]:
    """`status.json`: where a long run is, for a user or a watchdog (docs/soak.md)."""
    resumed = run.options.resume
    planned = resumed.planned_s if resumed else run.scenario.load.total_s
    # The whole run's time: a resumed soak's earlier segments count, its gaps do not.
    elapsed = sum((stage.get("end") or time.time()) - stage["start"]
                  for stage in run.all_stages())
    return dump(Status(
        run_id=run.run_id, status=status, updated_at=time.time(),
        writer=Writer(**writer_identity()),
        stage=run.stages[-1]["name"] if run.stages else None,
        segments=1 + len(resumed.gaps) if resumed else 1,
        gaps_s=round(sum(g["end"] - g["start"] for g in resumed.gaps), 1) if resumed else 0.0,
        elapsed_s=round(elapsed, 1), planned_s=planned,
        progress=round(min(1.0, elapsed / planned), 4) if planned else None,
        viewers_connected=sum(run.live.connected.values()),
        viewers_planned=run.scenario.planned_viewers,
        cycles_done=run.cycles.done if run.cycles else 0,
        rows=dict(run.recorder.rows_seen),
        write_errors=len(run.recorder.write_errors),
        last_interim=run.interim.last if run.interim else None,
        resumed=resumed is not None))
