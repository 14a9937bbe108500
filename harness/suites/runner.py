"""Runs suites and writes a results folder like a load run's: `manifest.json` (kind `check`),
`checks.json` (every result with its evidence), `verdict.json`, `summary.md`, `junit.xml` and
`report.html`."""

from __future__ import annotations

import datetime as dt
import html
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from harness import __version__
from harness.suites import access, api, e2e, security, verify  # noqa: F401  (registers their checks)
from harness.suites.base import REGISTRY, CheckResult, Target, run_check
from records.errors import InputError
from records.recorder import atomic_write_json

BUILT_SUITES = tuple(suite for suite, checks in REGISTRY.items() if checks)
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
        for item in REGISTRY[suite]:
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
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIPPED")}
    status = "FAIL" if counts["FAIL"] else "PASS"
    atomic_write_json(folder / "manifest.json", {
        "kind": "check", "run_id": folder.name, "status": "completed",
        "harness_version": __version__, "suites": list(suites),
        "target": {"api_base": target.api_base, "ws_base": target.ws_base,
                   "rtmp_url": target.rtmp_url, "hls_base": target.hls_base,
                   "database": bool(target.database_url), "redis": bool(target.redis_url)},
        "profile": target.profile.name, "host": {"hostname": socket.gethostname()},
        "started_at": started_at, "ended_at": time.time()})
    atomic_write_json(folder / "checks.json", [asdict(r) for r in results])
    atomic_write_json(folder / "verdict.json", {
        "status": status, "exit_code": exit_code(results), "counts": counts,
        "results": [{k: v for k, v in asdict(r).items() if k != "evidence"} for r in results]})
    (folder / "summary.md").write_text(summary(results, status))
    (folder / "junit.xml").write_bytes(junit(results))
    (folder / "report.html").write_text(report_html(results, status, folder.name))


ICONS = {"PASS": "✅", "FAIL": "❌", "SKIPPED": "⏭️"}


def summary(results: Sequence[CheckResult], status: str) -> str:
    lines = [f"## Nova checklist checks: **{status}**", "",
             "| | suite | check | checklist | result |", "|---|---|---|---|---|"]
    lines += [f"| {ICONS[r.status]} | {r.suite} | `{r.id}` | {r.checklist} | {r.reason} |"
              for r in results]
    return "\n".join(lines) + "\n"


def junit(results: Sequence[CheckResult]) -> bytes:
    suites = ET.Element("testsuites")
    for suite in dict.fromkeys(r.suite for r in results):
        mine = [r for r in results if r.suite == suite]
        element = ET.SubElement(suites, "testsuite", name=f"nova-check-{suite}",
                                tests=str(len(mine)),
                                failures=str(sum(r.status == "FAIL" for r in mine)),
                                skipped=str(sum(r.status == "SKIPPED" for r in mine)))
        for r in mine:
            case = ET.SubElement(element, "testcase", classname=f"nova.{suite}", name=r.id,
                                 time=f"{r.elapsed_ms / 1000:.3f}")
            if r.status == "FAIL":
                ET.SubElement(case, "failure", message=r.reason).text = r.checklist
            elif r.status == "SKIPPED":
                ET.SubElement(case, "skipped", message=r.reason)
    encoded: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return encoded


def report_html(results: Sequence[CheckResult], status: str, run_id: str) -> str:
    esc = html.escape
    rows = []
    for r in results:
        evidence = "<br>".join(
            f"<code>{esc(e.request)}</code> → {e.status if e.status is not None else '-'} "
            f"({e.elapsed_ms:g} ms) <small>{esc(e.excerpt)}</small>" for e in r.evidence)
        rows.append(f"<tr><td class='{r.status}'>{r.status}</td><td>{esc(r.suite)}</td>"
                    f"<td>{esc(r.id)}</td><td>{esc(r.checklist)}</td><td>{esc(r.reason)}</td>"
                    f"<td>{evidence}</td></tr>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Nova checks {esc(run_id)}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}"
            ".PASS{color:#2e7d32}.FAIL{color:#c62828}.SKIPPED{color:#757575}</style></head>"
            f"<body><h1>Checks: <span class='{status}'>{status}</span></h1><table><tr>"
            "<th>result</th><th>suite</th><th>check</th><th>checklist</th><th>why</th>"
            f"<th>evidence</th></tr>{''.join(rows)}</table></body></html>")
