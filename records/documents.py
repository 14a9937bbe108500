"""The JSON documents of a results folder, typed: `manifest.json`, `faults/faults.json`,
`status.json` and `verdict.json` (docs/results-format.md lists their fields; a test holds the
doc and these models equal). Writers build them from these models; readers get them back
validated, with one clear error for a folder another version of the harness wrote.

Fields the models do not name are kept (`extra="allow"`): a field a newer harness adds does
not make an older reader refuse the folder, and a document read and written back loses
nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from records.errors import InputError
from records.schema import RESULTS_SCHEMA_VERSION

# The oldest manifest analysis still reads: version 1 lacks pss_bytes, 2 anon_pss_bytes,
# and readers fill the missing columns with nulls.
OLDEST_READABLE_VERSION = 1


class DocumentError(InputError):
    """A results folder's document is missing, unreadable or not what its name says."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__([problem], hint)


class SchemaVersionError(DocumentError):
    """A results folder written by a harness whose format this one cannot read."""


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow")


class Span(_Document):
    """A stage (`ramp`, `hold`, `ramp_down`) or phase (`warmup`, `steady`, `cooldown`, and in
    analysis `gap`, `fault`, `recovery`): UTC epoch seconds; a running stage has no end yet."""

    name: str
    start: float
    end: float | None = None


class Gap(_Document):
    """Time between a killed soak's last data and its resumption (not measured)."""

    start: float
    end: float


class Writer(_Document):
    """The process writing a `running` document: host, pid and the pid's start time."""

    host: str
    pid: int
    started_at: float


class HostFacts(_Document):
    hostname: str = ""
    cpus: int | None = None
    memory_bytes: int | None = None
    python: str = ""
    arrow_pool: str = ""


class Planned(_Document):
    viewers: int = 0
    streams: int = 0
    duration_s: float = 0.0
    api_rate_per_s: float = 0.0
    workers: int = 0


class Validity(_Document):
    """The load generator's own health over the run: were its latencies trustworthy."""

    saturated: bool = False
    saturated_seconds: float = 0.0
    cpu_max_pct: float | None = None
    loop_lag_max_ms: float | None = None
    late_sends: int = 0


class WorkerRecord(_Document):
    """One Locust worker as the master saw it: where it ran, the viewers it held, when it was
    lost (no heartbeat or quit while the load ran) or left (after the load), and its clock's
    offset from the master's (`clock_offset_ms` ± `clock_bound_ms`, from the round trip that
    bounds it most tightly; `clock_offset_max_ms` the largest measured)."""

    client_id: str
    name: str = ""
    host: str = ""
    pid: int | None = None
    joined_at: float
    viewers_max: int = 0
    viewers_now: int = 0
    lost_at: float | None = None
    left_at: float | None = None
    clock_offset_ms: float | None = None
    clock_bound_ms: float | None = None
    clock_offset_max_ms: float | None = None
    clock_rounds: int = 0
    validity: Validity | None = None


class Distributed(_Document):
    """A run with workers: the address they joined (`HOST:PORT`), how many were local
    processes and how many were expected from elsewhere, and each worker seen."""

    master_address: str | None = None
    local_workers: int = 0
    expected_workers: int = 0
    max_clock_offset_ms: float = 5.0
    workers: list[WorkerRecord] = Field(default_factory=list)


class FaultRecord(_Document):
    """One Chaos Toolkit experiment start; `start`/`end` is the fault window (the first
    method action's start to the last one's end), empty when it never ran."""

    id: str
    experiment: str = ""
    title: str = ""
    start: float | None = None
    end: float | None = None
    status: str = ""
    deviated: bool | None = None
    actions: list[Any] = Field(default_factory=list)
    rollbacks: list[Any] = Field(default_factory=list)


class FaultList(RootModel[list[FaultRecord]]):
    """`faults/faults.json`: every experiment start so far, rewritten after each one so that
    a crashed run keeps them (the manifest lists them too once the run ends)."""


class Manifest(_Document):
    """`manifest.json`: what ran, against what, when, and how it went."""

    schema_version: int
    run_id: str
    status: str | None = None
    writer: Writer | None = None
    stack_started_by_run: dict[str, Any] | None = None
    harness_version: str | None = None
    harness_commit: str | None = None
    scenario_sha256: str | None = None
    scenario_file: str | None = None
    scenario: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, str] = Field(default_factory=dict)
    profile: str | None = None
    target: dict[str, Any] = Field(default_factory=dict)
    host: HostFacts = Field(default_factory=HostFacts)
    planned: Planned = Field(default_factory=Planned)
    started_at: float | None = None
    stages: list[Span] = Field(default_factory=list)
    phases: list[Span] = Field(default_factory=list)
    gaps: list[Gap] = Field(default_factory=list)
    faults: list[FaultRecord] = Field(default_factory=list)
    validity: Validity | None = None
    distributed: Distributed | None = None


class Status(_Document):
    """`status.json`: where a long run is, rewritten every few seconds (docs/soak.md)."""

    run_id: str
    status: str
    updated_at: float
    writer: Writer | None = None
    stage: str | None = None
    segments: int = 1
    gaps_s: float = 0.0
    elapsed_s: float = 0.0
    planned_s: float = 0.0
    progress: float | None = None
    viewers_connected: int = 0
    viewers_planned: int = 0
    cycles_done: int = 0
    rows: dict[str, int] = Field(default_factory=dict)  # rows recorded so far, per table
    write_errors: int = 0
    last_interim: dict[str, Any] | None = None
    resumed: bool = False


class Verdict(_Document):
    """`verdict.json` of a run (written by analysis) or of a checklist suite."""

    status: str
    exit_code: int
    results: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    coverage: float | None = None  # a run's: the share of its planned time with data
    thresholds_file: str | None = None


class EvidenceRecord(_Document):
    """One exchange a check made: the request (no credentials), the status, an excerpt."""

    request: str
    status: int | None = None
    excerpt: str = ""
    elapsed_ms: float = 0.0


class CheckRecord(_Document):
    """One checklist check's result (`checks.json` of a check folder)."""

    suite: str
    id: str
    checklist: str
    status: str  # PASS | FAIL | SKIPPED
    reason: str
    elapsed_ms: float = 0.0
    evidence: list[EvidenceRecord] = Field(default_factory=list)


class CheckList(RootModel[list[CheckRecord]]):
    """`checks.json`: every check's result with its evidence, in the order run."""


Model = TypeVar("Model", bound=BaseModel)


def _first_problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
                     for e in error.errors()[:3])


def read_document(path: Path, model: type[Model]) -> Model:
    """`path` parsed into `model`; a missing, unreadable or malformed file is a DocumentError
    that names the file and the first problems."""
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DocumentError(f"{path}: not there") from None
    except ValidationError as exc:  # before ValueError, which it is
        raise DocumentError(f"{path}: not a {model.__name__} document "
                            f"({_first_problems(exc)})") from None
    except (OSError, ValueError) as exc:
        raise DocumentError(f"{path}: cannot read it ({exc})") from None


def read_manifest(results_dir: Path) -> Manifest:
    """The folder's manifest, refused with a SchemaVersionError when this harness cannot read
    the folder's format."""
    path = results_dir / "manifest.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocumentError(f"{results_dir}: no manifest.json — not a results folder",
                            hint="give the folder a run wrote (results/<run-id>)") from None
    except (OSError, ValueError) as exc:
        raise DocumentError(f"{path}: not valid JSON ({exc})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if not isinstance(version, int):
        raise SchemaVersionError(f"{path}: no schema_version: written before the results "
                                 "format was versioned",
                                 hint="analyse it with the harness version that wrote it")
    if not OLDEST_READABLE_VERSION <= version <= RESULTS_SCHEMA_VERSION:
        raise SchemaVersionError(f"{path}: results format version {version}; this harness "
                                 f"reads versions {OLDEST_READABLE_VERSION} to "
                                 f"{RESULTS_SCHEMA_VERSION}",
                                 hint="analyse it with the harness that wrote it (harness "
                                      f"{raw.get('harness_version') or 'version unknown'})")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise DocumentError(f"{path}: not a manifest ({_first_problems(exc)})") from None


def dump(document: _Document) -> dict[str, Any]:
    """The document as plain JSON values, for the one atomic writer."""
    values: dict[str, Any] = document.model_dump(mode="json")
    return values
