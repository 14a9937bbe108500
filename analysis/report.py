"""Reports of a verdict: verdict.json (machine-readable), summary.md (CI job summaries),
junit.xml (one test case per threshold) and report.html (one self-contained file)."""

from __future__ import annotations

import base64
import html
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analysis import consistency, trends
from analysis import fault_verdicts as faults
from analysis.fault_verdicts import judged_phases
from analysis.judge import Result, Verdict, label
from analysis.load import RunData
from analysis.populations import POPULATIONS
from analysis.units import show
from records.provenance import HARNESS_VERSION, file_sha256, source_commit
from records.recorder import atomic_write_json


def _value(result: Result) -> str:
    if result.observed is None:
        return "n/a"
    ci = ""
    if result.low is not None and result.high is not None:
        ci = f" [{result.show(result.low)}, {result.show(result.high)}]"
    return f"{result.show(result.observed)}{ci}"


def _limit(result: Result) -> str:
    return f"{result.comparator} {result.show(result.limit)}"


def judged(result: Result) -> str:
    """How much of the run a threshold judged: "72 of 80 s (90 %)", or what it judged on."""
    if result.population_n is not None and result.judged_s is None:
        return f"{result.population_n} {POPULATIONS[str(result.population)]}"
    if result.judged_s is None or not result.run_s:
        return "whole run"
    share = show(result.judged_s / result.run_s, "ratio")
    return f"{result.judged_s:.0f} of {result.run_s:.0f} s ({share})"


def phase_line(run: RunData) -> str:
    """What the run's phases left out of the thresholds that exclude them, in seconds."""
    totals: dict[str, float] = {}
    for phase in judged_phases(run):
        if phase["name"] != "steady":
            span = max(0.0, float(phase["end"]) - float(phase["start"]))
            totals[phase["name"]] = totals.get(phase["name"], 0.0) + span
    parts = [f"{name} {seconds:.1f} s" for name, seconds in totals.items()]
    return (f"run {run.end_s - run.start_s:.1f} s; phases left out by the thresholds that "
            f"exclude them: {', '.join(parts) or 'none'} (each line's `judged` column)")


ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "❔", "NOT_APPLICABLE": "⚪"}


def run_facts(run: RunData, verdict: Verdict | None = None) -> dict[str, Any]:
    """The run block of every report: what ran, where, and what produced the verdict."""
    m = run.manifest
    thresholds = verdict.thresholds_file if verdict else None
    return {
        "run_id": m.run_id, "scenario": m.scenario.get("name"),
        "status": m.status, "profile": m.profile,
        "target": m.target.get("api_base"),
        "planned_viewers": m.planned.viewers,
        "streams": m.planned.streams,
        "duration_s": round(run.end_s - run.start_s, 1),
        "samples": len(run.samples), "events": len(run.events),
        "generator": m.validity.model_dump() if m.validity else None,
        "host": m.host.hostname,
        "harness": f"{m.harness_version} ({m.harness_commit or 'no git commit'})",
        "scenario_file": m.scenario_file, "scenario_sha256": m.scenario_sha256,
        "thresholds_file": thresholds, "thresholds_sha256": file_sha256(thresholds),
        "analysed_by": f"{HARNESS_VERSION} ({source_commit() or 'no git commit'})",
    }


def provenance_line(facts: dict[str, Any]) -> str:
    """One line saying what produced the report, for summary.md."""
    def short(sha: object) -> str:
        return str(sha)[:12] if sha else "n/a"
    return (f"harness {facts['harness']} on host {facts['host']}, profile {facts['profile']}; "
            f"scenario {facts['scenario_file']} (sha256 {short(facts['scenario_sha256'])}); "
            f"thresholds {facts['thresholds_file']} (sha256 "
            f"{short(facts['thresholds_sha256'])}); analysed by {facts['analysed_by']}")


def write_verdict_json(run: RunData, verdict: Verdict, path: Path) -> Path:
    atomic_write_json(path, {**verdict.to_json(), "run": run_facts(run, verdict),
                             "faults": faults.summary_json(run),
                             "consistency": {
                                 "viewer_counts": [asdict(f) for f in
                                                   consistency.source_figures(run)],
                                 "stream_problems": consistency.problems(run)}})
    return path


def fault_lines(run: RunData) -> list[str]:
    """One line per fault window (docs/chaos.md explains each figure)."""
    return [faults.describe(figure) for figure in faults.figures(run)]


def consistency_lines(run: RunData) -> list[str]:
    """One line per viewer-count source and per stream the target misreported (§14)."""
    lines = [f"viewer counts from {f.source}: {f.matched}/{f.readings} matched the sockets held,"
             f" mean error {f.mean_abs_error:.2g}, max {f.max_abs_error}, longest wrong "
             f"{f.longest_mismatch_s:.1f} s" for f in consistency.source_figures(run)]
    for stream, wrong in consistency.problems(run).items():
        lines.append(f"stream {stream}: {'; '.join(wrong)}")
    return lines


def soak_lines(run: RunData) -> list[str]:
    """Trends and cycles of a soak (docs/soak.md); nothing for a run without cycles."""
    if not (run.events.type == "cycle_started").any():
        return []
    lines = [trends.describe(t) for t in trends.memory_trends(run)]
    latency = trends.latency_trend(run)
    if latency is not None:
        lines.append(trends.describe(latency, "ms", 1.0))
    found = trends.cycles(run)
    if found:
        worst = max(found, key=lambda c: c.after_bytes / c.before_bytes)
        lines.append(f"{len(found)} connect/disconnect cycles, {sum(c.returned for c in found)} "
                     f"came back within {trends.CYCLE_TOLERANCE:.0%}; worst #{worst.number}: "
                     f"{worst.before_bytes / 2**20:.1f} → {worst.after_bytes / 2**20:.1f} MiB")
    return lines


def write_summary(run: RunData, verdict: Verdict, path: Path) -> Path:
    facts = run_facts(run, verdict)
    lines = [f"## Nova harness: **{verdict.status}** — {facts['scenario']} ({facts['run_id']})",
             "", f"{facts['planned_viewers']} viewers on {facts['streams']} streams, "
             f"{facts['duration_s']} s, target {facts['target']}", "", provenance_line(facts),
             "", phase_line(run), ""]
    for problem in verdict.validity:
        lines.append(f"- ⚠ invalid run: {problem}")
    for note in verdict.notes:
        lines.append(f"- note: {note}")
    found = fault_lines(run)
    if found:
        lines += ["", "Faults:", *[f"- {line}" for line in found]]
    checked = consistency_lines(run)
    if checked:
        lines += ["", "Consistency (§14):", *[f"- {line}" for line in checked]]
    soaked = soak_lines(run)
    if soaked:
        lines += ["", "Soak trends (§15):", *[f"- {line}" for line in soaked]]
    lines += ["", "| | threshold | checklist | observed [95 % CI] | limit | n | judged |",
              "|---|---|---|---|---|---|---|"]
    for r in verdict.results:
        lines.append(f"| {ICONS[r.status]} {label(r.status)} | `{r.id}` ({r.severity}) | "
                     f"{r.checklist} | {_value(r)} | {_limit(r)} | {r.n} | {judged(r)} |")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_junit(verdict: Verdict, path: Path, suite: str = "nova-harness") -> Path:
    failures = sum(r.status == "FAIL" for r in verdict.results)
    skipped = sum(r.status in ("INCONCLUSIVE", "NOT_APPLICABLE") for r in verdict.results)
    root = ET.Element("testsuite", name=suite, tests=str(len(verdict.results)),
                      failures=str(failures), errors="0", skipped=str(skipped))
    for r in verdict.results:
        case = ET.SubElement(root, "testcase", classname=f"{suite}.{r.severity}", name=r.id)
        ET.SubElement(case, "system-out").text = f"{r.checklist}: {r.reason}"
        if r.status == "FAIL":
            ET.SubElement(case, "failure", message=r.reason, type="threshold").text = _value(r)
        elif r.status in ("INCONCLUSIVE", "NOT_APPLICABLE"):
            ET.SubElement(case, "skipped", message=f"{label(r.status)}: {r.reason}")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border:1px solid #ccc;
padding:4px 6px;text-align:left}.PASS{color:#2e7d32}.FAIL{color:#c62828}
.INCONCLUSIVE,.NOT_APPLICABLE{color:#757575}img{max-width:100%;margin:1em 0}
h1 span{font-weight:bold}"""


def write_html(run: RunData, verdict: Verdict, charts: list[Path], path: Path) -> Path:
    esc = html.escape
    facts = run_facts(run, verdict)
    rows = "".join(
        f"<tr><td class='{r.status}'>{label(r.status)}</td><td>{esc(r.id)}<br><small>"
        f"{r.severity}</small></td><td>{esc(r.checklist)}</td><td>{esc(_value(r))}</td>"
        f"<td>{esc(_limit(r))}</td><td>{r.n}</td><td>{esc(judged(r))}</td>"
        f"<td>{esc(r.reason)}</td></tr>" for r in verdict.results)
    problems = "".join(f"<li>invalid run: {esc(p)}</li>" for p in verdict.validity) + \
        "".join(f"<li>{esc(n)}</li>" for n in [*verdict.notes, phase_line(run)])
    images = "".join(
        f"<h3>{esc(chart.stem)}</h3><img alt='{esc(chart.stem)}' src='data:image/png;base64,"
        f"{base64.b64encode(chart.read_bytes()).decode()}'>" for chart in charts)
    fault_items = "".join(f"<li>{esc(line)}</li>" for line in fault_lines(run))
    fault_html = f"<h2>Faults</h2><ul>{fault_items}</ul>" if fault_items else ""
    consistency_items = "".join(f"<li>{esc(line)}</li>" for line in consistency_lines(run))
    if consistency_items:
        fault_html += f"<h2>Consistency (§14)</h2><ul>{consistency_items}</ul>"
    soak_items = "".join(f"<li>{esc(line)}</li>" for line in soak_lines(run))
    if soak_items:
        fault_html += f"<h2>Soak trends (§15)</h2><ul>{soak_items}</ul>"
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(v))}</td></tr>"
                        for k, v in facts.items())
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Nova harness "
        f"{esc(str(facts['run_id']))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Verdict: <span class='{verdict.status}'>{verdict.status}</span></h1>"
        f"<ul>{problems}</ul><table><tr><th>result</th><th>threshold</th><th>checklist</th>"
        f"<th>observed [95 % CI]</th><th>limit</th><th>n</th><th>judged</th><th>reason</th>"
        f"</tr>{rows}"
        f"</table>{fault_html}<h2>Charts</h2>{images}<h2>Run</h2><table>{fact_rows}</table>"
        f"</body></html>")
    return path
