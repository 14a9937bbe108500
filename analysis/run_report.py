"""What a run's reports say: one line per threshold, the run's facts and provenance, its
phases, faults, consistency and soak trends, and its charts; analysis/report.py writes them."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analysis import consistency, trends
from analysis import fault_verdicts as faults
from analysis.fault_verdicts import judged_phases
from analysis.judge import Result, Verdict
from analysis.load import RunData
from analysis.populations import POPULATIONS
from analysis.report import Line, Report, Written, write_reports
from analysis.units import show
from records.provenance import HARNESS_VERSION, file_sha256, source_commit


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
        if phase["name"] not in ("steady", "worker_lost"):  # the latter is judged
            span = max(0.0, float(phase["end"]) - float(phase["start"]))
            totals[phase["name"]] = totals.get(phase["name"], 0.0) + span
    parts = [f"{name} {seconds:.1f} s" for name, seconds in totals.items()]
    return (f"run {run.end_s - run.start_s:.1f} s; phases left out by the thresholds that "
            f"exclude them: {', '.join(parts) or 'none'} (each line's `judged` column)")


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


def verdict_document(run: RunData, verdict: Verdict, facts: dict[str, Any]) -> dict[str, Any]:
    """verdict.json: the verdict, the run's facts, fault figures and consistency."""
    return {**verdict.to_json(), "run": facts,
            "faults": faults.summary_json(run),
            "consistency": {"viewer_counts": [asdict(f) for f in
                                              consistency.source_figures(run)],
                            "stream_problems": consistency.problems(run)}}


def result_line(result: Result) -> Line:
    r = result
    return Line(status=r.status, id=r.id, reason=r.reason,
                cells=(f"{r.id} ({r.severity})", r.checklist, _value(r), _limit(r), str(r.n),
                       judged(r), r.reason),
                junit_suite="nova-harness", junit_class=f"nova-harness.{r.severity}",
                junit_out=f"{r.checklist}: {r.reason}", failure_text=_value(r))


def sections(run: RunData) -> list[tuple[str, list[str]]]:
    """The report's titled lists that have something to say: faults, consistency, soak."""
    found = [("Faults", fault_lines(run)), ("Consistency (§14)", consistency_lines(run)),
             ("Soak trends (§15)", soak_lines(run))]
    return [(title, lines) for title, lines in found if lines]


def _after_html(titled: list[tuple[str, list[str]]], facts: dict[str, Any],
                charts: list[Path]) -> str:
    esc = html.escape
    out = "".join(f"<h2>{title}</h2><ul>{''.join(f'<li>{esc(x)}</li>' for x in lines)}</ul>"
                  for title, lines in titled)
    images = "".join(
        f"<h3>{esc(chart.stem)}</h3><img alt='{esc(chart.stem)}' src='data:image/png;base64,"
        f"{base64.b64encode(chart.read_bytes()).decode()}'>" for chart in charts)
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(v))}</td></tr>"
                        for k, v in facts.items())
    return f"{out}<h2>Charts</h2>{images}<h2>Run</h2><table>{fact_rows}</table>"


def run_report(run: RunData, verdict: Verdict, charts: list[Path]) -> Report:
    """The report of a judged run."""
    esc = html.escape
    facts = run_facts(run, verdict)
    phases = phase_line(run)
    titled = sections(run)
    invalid = [f"invalid run: {problem}" for problem in verdict.validity]
    notes_md = [f"{facts['planned_viewers']} viewers on {facts['streams']} streams, "
                f"{facts['duration_s']} s, target {facts['target']}", "",
                provenance_line(facts), "", phases, "",
                *[f"- ⚠ {line}" for line in invalid],
                *[f"- note: {note}" for note in verdict.notes], ""]
    for title, lines in titled:
        notes_md += [f"{title}:", *[f"- {line}" for line in lines], ""]
    notes_html = "<ul>" + "".join(f"<li>{esc(n)}</li>"
                                  for n in [*invalid, *verdict.notes, phases]) + "</ul>"
    return Report(
        status=verdict.status,
        heading=f"Nova harness: **{verdict.status}** — {facts['scenario']} ({facts['run_id']})",
        title=f"Nova harness {facts['run_id']}",
        columns=("threshold", "checklist", "observed [95 % CI]", "limit", "n", "judged",
                 "reason"),
        lines=tuple(result_line(r) for r in verdict.results),
        verdict=verdict_document(run, verdict, facts), notes_md=tuple(notes_md),
        notes_html=notes_html, after_html=_after_html(titled, facts, charts))


def write(run: RunData, verdict: Verdict, charts: list[Path], folder: Path) -> Written:
    """verdict.json, summary.md, junit.xml and report.html of a judged run, in `folder`."""
    return write_reports(run_report(run, verdict, charts), folder)
