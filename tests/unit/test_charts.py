"""What the charts show, read from the rendered figures themselves: limits named with their
value and unit and drawn apart from the percentiles, plain tick labels, legends beside the
data, the outage and the recovery marked, the scorecard's words for lines without evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from analysis import charts
from analysis.judge import judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds
from tests.unit.synthetic import START, http_rows, manifest, thresholds_file, write_run

LIMITS = """  - {id: list-p95, checklist: "§10 list", source: samples, filter: {kind: http},
     field: latency_ms, aggregation: p95, comparator: "<", limit: 500, unit: ms}
  - {id: list-p99, checklist: "§10 list", source: samples, filter: {kind: http},
     field: latency_ms, aggregation: p99, comparator: "<", limit: 100, unit: ms}
  - {id: drops, checklist: "§10 drops", source: events, filter: {type: viewer_dropped},
     aggregation: count, comparator: "==", limit: 0, min_samples: 0, population: viewers}
"""


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure a chart function finished, kept open for reading."""
    figures: list[Figure] = []

    def keep(fig: Figure, path: Path) -> Path:
        fig.canvas.draw()
        figures.append(fig)
        return path
    monkeypatch.setattr(charts, "_save", keep)
    return figures


def _run(tmp_path: Path, **extra: Any) -> Any:
    rows = http_rows([5.0 + (i % 7) for i in range(600)])
    folder = write_run(tmp_path / "run", rows, manifest(**extra))
    return load_run(folder), judge(load_run(folder),
                                   load_thresholds(thresholds_file(tmp_path, LIMITS)))


def test_latency_limits_are_named_and_unlike_the_percentiles(tmp_path: Path,
                                                             drawn: list[Figure]) -> None:
    run, verdict = _run(tmp_path)
    charts.latency(run, verdict, tmp_path / "latency.png")
    api = drawn[0].axes[0]
    lines = {str(line.get_label()): line for line in api.get_lines()}
    limits = [label for label in lines if label.startswith("limit ")]
    assert sorted(limits) == ["limit list-p95 500 ms (PASS)", "limit list-p99 100 ms (PASS)"]
    # Two limits of the same status differ in style; no percentile shares a limit's colour.
    assert lines[limits[0]].get_linestyle() != lines[limits[1]].get_linestyle()
    percentile_colours = {to_hex(lines[p].get_color()) for p in ("p50", "p95", "p99")}
    assert not percentile_colours & {to_hex(lines[label].get_color()) for label in limits}
    ticks = [t.get_text() for t in api.get_yticklabels() if t.get_text()]
    assert ticks and not any("^" in t or "10^" in t or "$" in t for t in ticks), ticks
    legend = api.get_legend()
    assert legend is not None
    # The legend sits right of the panel, not over its data.
    assert legend.get_window_extent().x0 >= api.get_window_extent().x1


def test_the_scorecard_says_not_applicable_and_keeps_its_labels(tmp_path: Path,
                                                                drawn: list[Figure]) -> None:
    _, verdict = _run(tmp_path)
    charts.scorecard(verdict, tmp_path / "scorecard.png")
    ax = drawn[0].axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("NOT APPLICABLE") for t in texts), texts
    assert any(t.startswith("PASS  ") and "ms < 500 ms" in t for t in texts), texts
    figure_left = drawn[0].get_window_extent().x0
    for label in ax.get_yticklabels():
        assert label.get_window_extent().x0 >= figure_left, label.get_text()


def test_the_faults_chart_marks_the_outage_and_the_recovery(tmp_path: Path,
                                                            drawn: list[Figure]) -> None:
    rows = []
    for row in http_rows([5.0] * 1000, step_s=0.1):
        if 40.0 <= row[0] - START < 48.0:
            row = (*row[:4], 5.0, False, 503, "down", *row[8:])
        rows.append(row)
    fault = {"id": "f", "title": "kill", "status": "completed", "start": START + 40.0,
             "end": START + 50.0}
    folder = write_run(tmp_path / "run", rows, manifest(faults=[fault]))
    charts.faults(load_run(folder), tmp_path / "faults.png")
    labels = drawn[0].axes[1].get_legend_handles_labels()[1]
    assert "outage seen by users (8.0 s)" in labels
    assert "recovered (8.0 s after injection)" in labels
