"""What a check folder's reports say: one line per check, with the requests and answers that
are its evidence. Reads the folder's `checks.json` (written by `nova-harness check`);
analysis/report.py writes the reports."""

from __future__ import annotations

import html
from pathlib import Path

from analysis.report import Line, Report, Written, write_reports
from records.documents import CheckList, CheckRecord, read_document


def _evidence_html(record: CheckRecord) -> str:
    esc = html.escape
    return "<br>".join(
        f"<code>{esc(e.request)}</code> → {e.status if e.status is not None else '-'} "
        f"({e.elapsed_ms:g} ms) <small>{esc(e.excerpt)}</small>" for e in record.evidence)


def check_line(record: CheckRecord) -> Line:
    return Line(status=record.status, id=record.id, reason=record.reason,
                cells=(record.suite, record.id, record.checklist, record.reason),
                junit_suite=f"nova-check-{record.suite}", junit_class=f"nova.{record.suite}",
                junit_out=f"{record.checklist}: {record.reason}", failure_text=record.checklist,
                elapsed_s=record.elapsed_ms / 1000, evidence_html=_evidence_html(record))


def check_status(records: list[CheckRecord]) -> str:
    """FAIL when any check failed; PASS otherwise (SKIPPED lines say why they were not run)."""
    return "FAIL" if any(r.status == "FAIL" for r in records) else "PASS"


def check_report(records: list[CheckRecord], run_id: str) -> Report:
    status = check_status(records)
    counts = {s: sum(r.status == s for r in records) for s in ("PASS", "FAIL", "SKIPPED")}
    return Report(
        status=status, heading=f"Nova checklist checks: **{status}**",
        title=f"Nova checks {run_id}", columns=("suite", "check", "checklist", "result"),
        lines=tuple(check_line(r) for r in records),
        verdict={"status": status, "exit_code": 1 if status == "FAIL" else 0,
                 "counts": counts,
                 "results": [r.model_dump(mode="json", exclude={"evidence"}) for r in records]},
        evidence_column=True)


def write(folder: Path) -> Written:
    """The reports of the check folder `folder`, from its checks.json."""
    records = read_document(folder / "checks.json", CheckList).root
    return write_reports(check_report(records, folder.name), folder)
