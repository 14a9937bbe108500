"""The analysis stage end to end: load → judge → charts → reports, all into the results
folder. Used by `nova-harness run` at the end and by `nova-harness analyze`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis import charts, run_report
from analysis.judge import Verdict, judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds, resolve_thresholds_path


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict
    report_html: Path
    files: list[Path]


def analyze(results_dir: Path, thresholds: Path | None = None,
            draw: bool = True, out_dir: Path | None = None) -> Analysis:
    """Judge `results_dir`; the verdict, reports and charts go to `out_dir` (default: the
    results folder itself; a running soak's interim verdicts go to `interim/`)."""
    run = load_run(results_dir)
    out = out_dir or results_dir
    out.mkdir(parents=True, exist_ok=True)
    path = resolve_thresholds_path(thresholds, run.manifest.scenario.get("thresholds"),
                                   run.manifest.scenario_file)
    verdict = judge(run, load_thresholds(path), str(path))
    drawn = charts.draw_all(run, verdict, out / "charts") if draw else []
    written = run_report.write(run, verdict, drawn, out)
    return Analysis(verdict, written.report_html, [*written.all, *drawn])
