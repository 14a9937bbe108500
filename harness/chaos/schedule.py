"""A scenario's `chaos:` list, run during load: each experiment is a `chaos run
--rollback-strategy always` subprocess started at its offset (and again every `repeat_every`),
with its journal in `results/<run-id>/faults/`. Each journal becomes a fault record (the window
from the first method action's start to the last one's end) in `faults/faults.json` and the
manifest. Stopping the run (end of hold, Ctrl-C, a crash) interrupts a running experiment with
SIGINT, which makes Chaos Toolkit play its rollbacks, and waits for them."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent

from harness.config.scenario import ChaosEntry
from harness.load.context import UserContext
from records.documents import FaultList
from records.errors import InputError
from records.recorder import atomic_write_json

ROLLBACK_WAIT_S = 120.0
# Fault functions that need a part of the local stack the default stack does not run.
NEEDS_STANDBY = frozenset({"promote_standby", "restore_postgres_pair"})
NEEDS_PROXY = frozenset({"add_latency", "remove_latency"})


@dataclass(frozen=True)
class Occurrence:
    """One planned start of one experiment."""

    index: int
    path: Path
    at_s: float
    repeat: int
    variables: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return f"{self.index:02d}-{self.path.stem}-{self.repeat}"


def chaos_program() -> str:
    """The `chaos` command of this environment (next to the running Python first)."""
    beside = Path(sys.executable).parent / "chaos"
    found = str(beside) if beside.exists() else shutil.which("chaos")
    if found is None:
        raise InputError(["chaos: the Chaos Toolkit command is not installed"],
                         hint="run `make setup` (installs chaostoolkit and chaostoolkit-lib<1.45)")
    return found


def experiment_path(entry: ChaosEntry, scenario_dir: Path) -> Path:
    """Relative to the scenario file, else to the working directory."""
    candidate = scenario_dir / entry.experiment
    return candidate if candidate.exists() else Path(entry.experiment)


def plan(entries: list[ChaosEntry], scenario_dir: Path, total_s: float) -> list[Occurrence]:
    """Every start within the run, in time order."""
    occurrences = []
    for index, entry in enumerate(entries):
        variables = tuple((k, _typed(v)) for k, v in sorted(entry.vars.items()))
        at_s, repeat = entry.at, 0
        while at_s < total_s:
            occurrences.append(Occurrence(index, experiment_path(entry, scenario_dir), at_s,
                                          repeat, variables))
            if not entry.repeat_every:
                break
            at_s, repeat = at_s + entry.repeat_every, repeat + 1
    return sorted(occurrences, key=lambda o: o.at_s)


def _typed(value: str | int | float) -> str:
    """`--var` syntax: Chaos Toolkit casts `key:float=...`; a bare value stays a string."""
    if isinstance(value, bool | str):
        return f"={value}"
    return f":{'int' if isinstance(value, int) else 'float'}={value}"


def read_experiment(path: Path) -> dict[str, Any]:
    import yaml

    text = path.read_text()
    document: dict[str, Any] = json.loads(text) if path.suffix == ".json" else \
        yaml.safe_load(text)
    return document


def functions(experiment: dict[str, Any]) -> set[str]:
    """Python functions the experiment's method and rollbacks call."""
    activities = [*experiment.get("method", []), *experiment.get("rollbacks", [])]
    return {a.get("provider", {}).get("func", "") for a in activities if isinstance(a, dict)}


ANALYTICS_ROLES = frozenset({"kafka", "clickhouse", "events-loader"})


def roles_named(experiment: dict[str, Any]) -> set[str]:
    """Local-stack roles the experiment's activities name."""
    activities = [*experiment.get("method", []), *experiment.get("rollbacks", [])]
    arguments = [a.get("provider", {}).get("arguments") for a in activities
                 if isinstance(a, dict)]
    return {str(args["role"]) for args in arguments if isinstance(args, dict) and "role" in args}


def check_experiments(entries: list[ChaosEntry], scenario_dir: Path, *, standby: bool,
                      proxied: tuple[str, ...], local_target: bool,
                      analytics: bool = False) -> list[str]:
    """Every problem with the scenario's experiments: missing files, `chaos validate`
    failures, and local-stack parts they need that the scenario does not ask for."""
    problems: list[str] = []
    program = chaos_program()
    for index, entry in enumerate(entries):
        where = f"chaos[{index}].experiment"
        path = experiment_path(entry, scenario_dir)
        if not path.exists():
            problems.append(f"{where}: file {entry.experiment} not found")
            continue
        result = subprocess.run([program, "--no-version-check", "--no-log-file", "validate",
                                 str(path)], capture_output=True, text=True, check=False,
                                timeout=120)
        if result.returncode != 0:
            lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
            problems.append(f"{where}: {path} does not validate: "
                            f"{lines[-1] if lines else 'exit ' + str(result.returncode)}")
            continue
        experiment = read_experiment(path)
        used = functions(experiment)
        if local_target and roles_named(experiment) & ANALYTICS_ROLES and not analytics:
            problems.append(f"{where}: {path.name} breaks the analytics path: set "
                            "stack.analytics: true")
        if local_target and used & NEEDS_STANDBY and not standby:
            problems.append(f"{where}: {path.name} needs a PostgreSQL standby: set "
                            "stack.standby: true")
        if local_target and used & NEEDS_PROXY and not proxied:
            problems.append(f"{where}: {path.name} adds network latency: set "
                            "stack.latency_proxy: [postgres] (or redis)")
    return problems


def describe(path: Path, variables: tuple[tuple[str, str], ...] = ()) -> str:
    """One line: the experiment's title and what its method does, with configuration values
    filled in (scenario `vars` first, then the experiment's defaults)."""
    experiment = read_experiment(path)
    values = {key: str(spec.get("default", "")) if isinstance(spec, dict) else str(spec)
              for key, spec in (experiment.get("configuration") or {}).items()}
    values.update({key: typed.split("=", 1)[1] for key, typed in variables})
    steps = []
    for activity in experiment.get("method", []):
        provider = activity.get("provider", {})
        args = provider.get("arguments", {})
        shown = ", ".join(f"{k}={_fill(str(v), values)}" for k, v in args.items())
        steps.append(f"{provider.get('func') or provider.get('path', '?')}({shown})")
        pause = (activity.get("pauses") or {}).get("after")
        if pause is not None:
            steps.append(f"wait {_fill(str(pause), values)} s")
    return f"{experiment.get('title', path.stem)} — {'; '.join(steps)}"


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return text


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.fromisoformat(iso).timestamp()


def fault_record(journal: dict[str, Any], occurrence: Occurrence,
                 journal_path: Path) -> dict[str, Any]:
    """The fault window and outcome of one finished (or interrupted) experiment."""
    runs = journal.get("run", [])
    actions = [r for r in runs if r.get("activity", {}).get("type") == "action"]
    window = actions or runs
    start = _epoch(window[0]["start"]) if window else _epoch(journal.get("start"))
    end = _epoch(window[-1]["end"]) if window else _epoch(journal.get("end"))
    return {
        "id": occurrence.name,
        "experiment": str(occurrence.path),
        "title": journal.get("experiment", {}).get("title", occurrence.path.stem),
        "planned_at_s": occurrence.at_s,
        "start": start, "end": end,
        "status": journal.get("status"), "deviated": bool(journal.get("deviated")),
        "journal": str(journal_path.name),
        "actions": [_activity(r) for r in runs],
        "rollbacks": [_activity(r) for r in journal.get("rollbacks", [])],
    }


def _activity(run: dict[str, Any]) -> dict[str, Any]:
    activity = run.get("activity", {})
    return {"name": activity.get("name"), "type": activity.get("type"),
            "status": run.get("status"), "start": _epoch(run.get("start")),
            "end": _epoch(run.get("end")), "output": run.get("output"),
            "exception": (run.get("exception") or [""])[-1][:300] or None}


class ChaosRunner:
    """Starts the planned experiments at their offsets from `t0`, one at a time."""

    def __init__(self, occurrences: list[Occurrence], results_dir: Path, env: dict[str, str],
                 ctx: UserContext, on_record: Callable[[], object] = lambda: None) -> None:
        self.occurrences = occurrences
        self.faults_dir = results_dir / "faults"
        self.logs_dir = results_dir / "logs"
        self.env = {**os.environ, **env}
        self.ctx = ctx
        self.faults: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.on_record = on_record

    def start(self, t0: float) -> None:
        self.faults_dir.mkdir(parents=True, exist_ok=True)
        self.greenlet = gevent.spawn(self._loop, t0)

    def _loop(self, t0: float) -> None:
        for occurrence in self.occurrences:
            while not self.stopping and time.time() < t0 + occurrence.at_s:
                gevent.sleep(min(0.5, t0 + occurrence.at_s - time.time()))
            if self.stopping:
                return
            self._run(occurrence)

    def _run(self, occurrence: Occurrence) -> None:
        journal_path = self.faults_dir / f"{occurrence.name}.journal.json"
        log_path = self.logs_dir / f"chaos-{occurrence.name}.log"
        command = [chaos_program(), "--no-version-check", "--log-file", str(log_path), "run",
                   "--rollback-strategy", "always", "--journal-path", str(journal_path),
                   *[f"--var={key}{value}" for key, value in occurrence.variables],
                   str(occurrence.path)]
        with open(log_path, "ab") as out:
            # Its own session: a terminal Ctrl-C reaches the harness, which then interrupts
            # the experiment itself and waits for its rollbacks.
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)
        self.proc.wait()
        self._record(occurrence, journal_path, self.proc.returncode)
        self.proc = None

    def _record(self, occurrence: Occurrence, journal_path: Path, code: int | None) -> None:
        try:
            journal = json.loads(journal_path.read_text())
        except (OSError, ValueError):
            journal = {"status": f"no journal (chaos exited {code})", "run": []}
        record = fault_record(journal, occurrence, journal_path)
        self.faults.append(record)
        atomic_write_json(self.faults_dir / "faults.json",
                          FaultList.model_validate(self.faults).model_dump(mode="json"))
        self.on_record()
        if record["start"] is not None:
            self.ctx.event("fault_started", ts=record["start"], detail=record["id"])
        if record["end"] is not None:
            self.ctx.event("fault_ended", ts=record["end"], detail=record["id"])

    def stop(self, timeout_s: float = ROLLBACK_WAIT_S) -> None:
        """No new experiments; interrupt a running one (its rollbacks run) and wait."""
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        if self.greenlet is not None:
            self.greenlet.join(timeout=timeout_s)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
