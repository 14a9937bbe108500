"""The one report writer, for load runs and checklist checks alike: `verdict.json`
(machine-readable), `summary.md` (CI job summaries), `junit.xml` (one test case per line) and
`report.html` (one self-contained file). What a report says is built elsewhere
(analysis/run_report.py for a run's thresholds, analysis/check_report.py for checks); how it
is written is decided here once."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.judge import label
from records.recorder import atomic_write_json

ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "❔", "NOT_APPLICABLE": "⚪",
         "SKIPPED": "⏭️"}
NOT_JUDGED = ("INCONCLUSIVE", "NOT_APPLICABLE", "SKIPPED")  # JUnit's `skipped`


@dataclass(frozen=True)
class Line:
    """One judged line: a threshold of a run, or a check."""

    status: str
    id: str
    reason: str
    cells: tuple[str, ...]       # the report's columns after the result, as plain text
    junit_suite: str             # the JUnit testsuite it belongs to
    junit_class: str
    junit_out: str = ""          # the test case's system-out
    failure_text: str = ""       # the body of a JUnit failure
    elapsed_s: float | None = None
    evidence_html: str | None = None  # a last HTML column (requests and answers), escaped


@dataclass(frozen=True)
class Report:
    """Everything the four files say; each writer picks its part."""

    status: str
    heading: str                 # "Nova harness: **PASS** — staging (run id)"
    title: str                   # the HTML page's title
    columns: tuple[str, ...]     # headers of Line.cells
    lines: tuple[Line, ...]
    verdict: dict[str, Any]      # verdict.json
    notes_md: tuple[str, ...] = ()   # markdown lines between the heading and the table
    notes_html: str = ""             # HTML between the heading and the table
    after_html: str = ""             # HTML sections after the table (faults, charts, facts)
    evidence_column: bool = False


def summary_md(report: Report) -> str:
    header = ["", *report.columns]
    lines = [f"## {report.heading}", "", *report.notes_md,
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in report.lines:
        cells = [f"{ICONS[line.status]} {label(line.status)}", *line.cells]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def junit_xml(report: Report) -> bytes:
    """One testsuite per group of lines, under a root that carries the totals."""
    def counts(lines: Sequence[Line]) -> dict[str, str]:
        return {"tests": str(len(lines)),
                "failures": str(sum(line.status == "FAIL" for line in lines)),
                "errors": "0", "skipped": str(sum(line.status in NOT_JUDGED for line in lines))}
    root = ET.Element("testsuites", attrib=counts(report.lines))
    for suite in dict.fromkeys(line.junit_suite for line in report.lines):
        mine = [line for line in report.lines if line.junit_suite == suite]
        element = ET.SubElement(root, "testsuite", attrib={"name": suite, **counts(mine)})
        for line in mine:
            case = ET.SubElement(element, "testcase", classname=line.junit_class, name=line.id)
            if line.elapsed_s is not None:
                case.set("time", f"{line.elapsed_s:.3f}")
            if line.junit_out:
                ET.SubElement(case, "system-out").text = line.junit_out
            if line.status == "FAIL":
                ET.SubElement(case, "failure", message=line.reason).text = line.failure_text
            elif line.status in NOT_JUDGED:
                ET.SubElement(case, "skipped", message=f"{label(line.status)}: {line.reason}")
    encoded: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return encoded


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border:1px solid #ccc;
padding:4px 6px;text-align:left;vertical-align:top}.PASS{color:#2e7d32}.FAIL{color:#c62828}
.INCONCLUSIVE,.NOT_APPLICABLE,.SKIPPED{color:#757575}img{max-width:100%;margin:1em 0}
h1 span{font-weight:bold}"""


def html_page(report: Report) -> str:
    esc = html.escape
    headers = ["result", *report.columns, *(["evidence"] if report.evidence_column else [])]
    rows = []
    for line in report.lines:
        cells = "".join(f"<td>{esc(cell)}</td>" for cell in line.cells)
        evidence = f"<td>{line.evidence_html or ''}</td>" if report.evidence_column else ""
        rows.append(f"<tr><td class='{line.status}'>{label(line.status)}</td>{cells}"
                    f"{evidence}</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(report.title)}"
            f"</title><style>{_CSS}</style></head><body><h1>Verdict: <span "
            f"class='{report.status}'>{report.status}</span></h1>{report.notes_html}"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>{report.after_html}</body></html>")


@dataclass(frozen=True)
class Written:
    verdict_json: Path
    summary_md: Path
    junit_xml: Path
    report_html: Path

    @property
    def all(self) -> list[Path]:
        return [self.verdict_json, self.summary_md, self.junit_xml, self.report_html]


def write_reports(report: Report, folder: Path) -> Written:
    """The four report files of `report` in `folder`."""
    paths = Written(folder / "verdict.json", folder / "summary.md", folder / "junit.xml",
                    folder / "report.html")
    atomic_write_json(paths.verdict_json, report.verdict)
    paths.summary_md.write_text(summary_md(report))
    paths.junit_xml.write_bytes(junit_xml(report))
    paths.report_html.write_text(html_page(report))
    return paths
