"""Runs suites and writes a check folder's data: `manifest.json` (kind `check`) and
`checks.json` (every result with its evidence). The CLI then has analysis write its reports
(`verdict.json`, `summary.md`, `junit.xml`, `report.html`), as for a load run."""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from harness import __version__
from harness.suites import (  # noqa: F401  (registers their checks)
    access,
    analytics,
    api,
    contract_props,
    contract_rest,
    contract_ws,
    e2e,
    monitoring,
    security,
    verify,
)
from harness.suites.base import EXPANDERS, REGISTRY, CheckResult, Target, checks_of, run_check
from records.documents import CheckList
from records.errors import InputError
from records.recorder import atomic_write_json

BUILT_SUITES = tuple(suite for suite, checks in REGISTRY.items()
                     if checks or EXPANDERS[suite])
EXIT_OK, EXIT_FAILED = 0, 1


def selected(names: Sequence[str]) -> list[str]:
    """Suite names (`all` = every built suite), in registry order; unknown ones are an input
    error listing what exists."""
    wanted = set(BUILT_SUITES) if "all" in names else set(names)
    unknown = sorted(wanted - set(BUILT_SUITES))
    if unknown:
        raise InputError([f"--suite {', '.join(unknown)}: no such suite here"],
                         hint=f"built suites: {', '.join(BUILT_SUITES)}, or all")
    return [suite for suite in BUILT_SUITES if suite in wanted]


def run_suites(target: Target, suites: Sequence[str],
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    for suite in suites:
        for item in checks_of(suite, target):
            result = run_check(target, item, len(results))
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def exit_code(results: Sequence[CheckResult]) -> int:
    return EXIT_FAILED if any(r.status == "FAIL" for r in results) else EXIT_OK


def new_folder(results_root: Path, suites: Sequence[str]) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = results_root / f"{stamp}-check-{'-'.join(suites)}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    return folder


def write_results(folder: Path, target: Target, suites: Sequence[str],
                  results: Sequence[CheckResult], started_at: float) -> None:
    """The check folder's data: `manifest.json` (kind `check`) and `checks.json` (every result
    with its evidence). Its reports are analysis's (analysis/check_report.py)."""
    atomic_write_json(folder / "manifest.json", {
        "kind": "check", "run_id": folder.name, "status": "completed",
        "harness_version": __version__, "suites": list(suites),
        "target": {"api_base": target.api_base, "ws_base": target.ws_base,
                   "rtmp_url": target.rtmp_url, "hls_base": target.hls_base,
                   "database": bool(target.database_url), "redis": bool(target.redis_url)},
        "profile": target.profile.name, "host": {"hostname": socket.gethostname()},
        "started_at": started_at, "ended_at": time.time()})
    records = CheckList.model_validate([asdict(r) for r in results])
    atomic_write_json(folder / "checks.json", records.model_dump(mode="json"))
