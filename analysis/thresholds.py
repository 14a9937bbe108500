"""Threshold files (`scenarios/thresholds/*.yaml`): each entry names a metric source and filter,
an aggregation, a comparator and limit with unit, a scope (whole run or windows with a rule),
excluded phases, a minimum sample count and what to do below it, a severity and the checklist
line it comes from. Unknown tables, columns, kinds or derived metrics are input errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analysis.analytics import ANALYTICS_METRICS
from analysis.consistency import CONSISTENCY_METRICS
from analysis.fault_verdicts import FAULT_METRICS
from analysis.populations import POPULATIONS
from analysis.trends import TREND_METRICS
from records.errors import InputError
from records.schema import EVENT_TYPES, SAMPLE_KINDS, TABLES
from records.yamlio import build, read_yaml, yaml_lines

AGGREGATIONS = ("p50", "p90", "p95", "p99", "p999", "max", "min", "mean", "count", "rate",
                "success_ratio", "error_ratio", "slope")
DERIVED = {
    "viewers_connected_ratio": "viewers that got connection_established / planned viewers",
    "viewers_saw_start_ratio": "viewers that saw stream_started / viewers connected",
    "stream_completion_ratio": "streams that went active and ended normally / streams created",
    "broadcaster_activation_s": "slowest publish → active time, seconds",
    "ws_connect_success_ratio": "successful viewer socket connects / attempts",
    "generator_saturated_s": "seconds the load generator was saturated",
    "hls_stall_ratio": "stalled seconds / (stalled + played seconds) of HLS viewers",
    "target_cpu_share_p95": "p95 over time of the target roles' CPU / all host cores",
    "harness_cpu_share_p95": "p95 over time of the load generator's CPU / all host cores",
    "target_memory_share_max": "peak of the target roles' RSS / host memory",
    "viewer_count_match_ratio": "viewer counts told to viewers that match the sockets held",
    "api_memory_baseline_bytes": "the service's RSS (all instances) over the run's first "
                                 "seconds, before load, median",
    **CONSISTENCY_METRICS,
    **ANALYTICS_METRICS,
    **TREND_METRICS,
    **FAULT_METRICS,
}
_WINDOW_RULE = re.compile(r"^(all|>=\s*(\d+(?:\.\d+)?)\s*%)$")
Scalar = str | int | float | bool
Phase = Literal["warmup", "steady", "cooldown", "fault", "recovery", "gap"]
DEFAULT_EXCLUDED: tuple[Phase, ...] = ("warmup", "cooldown", "gap")


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    checklist: str
    description: str = ""
    source: Literal["samples", "events", "resources", "metrics", "derived"]
    filter: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    field: str | None = None
    metric: str | None = None
    aggregation: Literal[AGGREGATIONS] = "p95"  # type: ignore[valid-type]
    comparator: Literal["<", "<=", ">", ">=", "=="]
    limit: float
    unit: str = ""
    scope: Literal["run", "windows"] = "run"
    window_s: Annotated[float, Field(gt=0)] = 60.0
    window_rule: str = "all"
    exclude_phases: list[Phase] = Field(default_factory=lambda: list(DEFAULT_EXCLUDED))
    min_samples: Annotated[int, Field(ge=0)] = 1
    below_min: Literal["inconclusive", "fail", "not_applicable"] = "inconclusive"
    population: str | None = None
    severity: Literal["critical", "warning"] = "critical"
    # Analytics lines: judged only on a ClickHouse read at least this long after the load
    # (the scenario's monitors.analytics.settle_s sets how long the harness waits).
    settle_s: Annotated[float, Field(ge=0)] | None = None

    @field_validator("below_min", mode="before")
    @classmethod
    def _no_pass_without_data(cls, value: object) -> object:
        if value == "pass":
            raise ValueError("below_min: pass is refused: a PASS needs evidence. Name the "
                             "population the bad events come from (`population:`, e.g. "
                             "viewers) so an empty one is NOT APPLICABLE, or use "
                             "inconclusive | fail | not_applicable")
        if value == "skipped":
            raise ValueError("below_min: skipped is now called not_applicable")
        return value

    @field_validator("population")
    @classmethod
    def _known_population(cls, value: str | None) -> str | None:
        if value is not None and value not in POPULATIONS:
            raise ValueError(f"population {value!r} is not known (known: "
                             f"{', '.join(POPULATIONS)})")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Threshold:
        if self.source == "derived":
            if self.metric not in DERIVED:
                raise ValueError(f"metric {self.metric!r} is not a derived metric "
                                 f"(known: {', '.join(DERIVED)})")
            return self
        columns = TABLES[self.source].names
        unknown = [c for c in self.filter if c not in columns]
        if unknown:
            raise ValueError(f"filter column(s) {unknown} not in table {self.source} "
                             f"(columns: {', '.join(columns)})")
        needs_field = self.aggregation not in ("count", "rate", "success_ratio", "error_ratio")
        if needs_field and self.field not in columns:
            raise ValueError(f"field {self.field!r} is not a column of {self.source}")
        if self.aggregation in ("success_ratio", "error_ratio") and "ok" not in columns:
            raise ValueError(f"{self.aggregation} needs the 'ok' column (samples only)")
        known = {"samples": ("kind", SAMPLE_KINDS), "events": ("type", EVENT_TYPES)}
        if self.source in known:
            column, values = known[self.source]
            wanted = self.filter.get(column)
            for value in wanted if isinstance(wanted, list) else [wanted]:
                if value is not None and value not in values:
                    raise ValueError(f"filter {column}={value!r} is never written "
                                     f"(known: {', '.join(sorted(values))})")
        if not _WINDOW_RULE.match(self.window_rule):
            raise ValueError(f"window_rule {self.window_rule!r}: use 'all' or '>= 99%'")
        return self

    @property
    def window_share(self) -> float:
        match = _WINDOW_RULE.match(self.window_rule)
        assert match is not None
        return 1.0 if match[1] == "all" else float(match[2]) / 100


class ThresholdFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    thresholds: list[Threshold]

    @model_validator(mode="after")
    def _unique_ids(self) -> ThresholdFile:
        ids = [t.id for t in self.thresholds]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate threshold ids {duplicates}")
        return self


def load_thresholds(path: Path) -> ThresholdFile:
    """Read and validate a threshold file; InputError lists every problem."""
    return build(ThresholdFile, read_yaml(path, "thresholds"), f"thresholds {path.name}",
                 "see docs/thresholds.md", yaml_lines(path))


def resolve_thresholds_path(explicit: Path | None, scenario_thresholds: str | None,
                            scenario_file: str | None) -> Path:
    """--thresholds, else the scenario's `thresholds:` (relative to its file), else the
    staging checklist."""
    if explicit is not None:
        return explicit
    root = Path(__file__).resolve().parents[1] / "scenarios"
    if scenario_thresholds:
        for base in (Path(scenario_file).parent if scenario_file else root, root, Path()):
            candidate = base / scenario_thresholds
            if candidate.exists():
                return candidate
        raise InputError([f"thresholds file {scenario_thresholds} not found"])
    return root / "thresholds" / "checklist-staging.yaml"
