"""Verdicts on synthetic runs whose distributions make each result exactly predictable."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from analysis.analyze import analyze
from analysis.compare import compare
from analysis.judge import judge
from analysis.load import load_run
from analysis.stats import percentile, ratio
from analysis.thresholds import load_thresholds
from records.errors import InputError
from tests.unit.synthetic import START, http_rows, manifest, thresholds_file, write_run

P95_BELOW_100 = """  - id: list-p95
    checklist: "§10 stream list"
    source: samples
    filter: {kind: http, name: list_active}
    field: latency_ms
    aggregation: p95
    comparator: "<"
    limit: 100
    unit: ms
    exclude_phases: []
    min_samples: 100
"""


def verdict_for(tmp_path: Path, latencies: list[float], body: str = P95_BELOW_100,
                **manifest_extra: Any) -> tuple[str, str]:
    folder = write_run(tmp_path / "run", http_rows(latencies), manifest(**manifest_extra))
    verdict = judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, body)))
    return verdict.results[0].status, verdict.results[0].reason


def test_pass(tmp_path: Path) -> None:
    status, reason = verdict_for(tmp_path, list(np.linspace(0, 80, 1000)))
    assert status == "PASS" and "p95 76" in reason


@pytest.mark.parametrize("value,expected", [(99.9, "PASS"), (100.0, "FAIL"), (100.1, "FAIL")])
def test_by_a_hair(tmp_path: Path, value: float, expected: str) -> None:
    assert verdict_for(tmp_path, [value] * 500)[0] == expected


def test_too_few_samples_is_inconclusive(tmp_path: Path) -> None:
    status, reason = verdict_for(tmp_path, [1.0] * 99)
    assert status == "INCONCLUSIVE" and "99 samples, fewer than the 100 needed" in reason
    folder = tmp_path / "run"
    verdict = judge(load_run(folder), load_thresholds(tmp_path / "t.yaml"))
    assert verdict.status == "INCONCLUSIVE" and verdict.exit_code == 3


def test_breach_lasting_one_window(tmp_path: Path) -> None:
    # 10 windows of 10 s, 100 samples each; window 4 is slow.
    latencies = [500.0 if 400 <= i < 500 else 10.0 for i in range(1000)]
    all_windows = P95_BELOW_100 + "    scope: windows\n    window_s: 10\n"
    status, reason = verdict_for(tmp_path, latencies, all_windows.replace(
        "min_samples: 100", "min_samples: 10"))
    assert status == "FAIL" and "9/10 windows" in reason and "worst 500 ms at +40 s" in reason
    shutil.rmtree(tmp_path / "run")
    lenient = all_windows.replace("min_samples: 100", "min_samples: 10") + \
        '    window_rule: ">= 90%"\n'
    assert verdict_for(tmp_path, latencies, lenient)[0] == "PASS"


def test_breach_inside_an_excluded_fault_phase(tmp_path: Path) -> None:
    latencies = [900.0 if 300 <= i < 600 else 10.0 for i in range(1000)]
    fault = {"faults": [{"id": "00-kill", "start": START + 30, "end": START + 60}]}
    excluded = P95_BELOW_100.replace("exclude_phases: []", "exclude_phases: [fault]")
    assert verdict_for(tmp_path, latencies, excluded, **fault)[0] == "PASS"
    shutil.rmtree(tmp_path / "run")
    assert verdict_for(tmp_path, latencies, P95_BELOW_100, **fault)[0] == "FAIL"


@pytest.mark.parametrize("change,message", [
    ("filter: {kind: http, name: list_active}", "filter: {kind: https}"),
    ("source: samples", "source: derived\n    metric: happiness"),
    ("field: latency_ms", "field: latency_us"),
    ("filter: {kind: http, name: list_active}", "filter: {colour: red}"),
])
def test_unknown_metric_or_tag_is_an_input_error(tmp_path: Path, change: str,
                                                 message: str) -> None:
    with pytest.raises(InputError) as failure:
        load_thresholds(thresholds_file(tmp_path, P95_BELOW_100.replace(change, message)))
    assert any("thresholds[0]" in p for p in failure.value.problems), failure.value.problems


def test_killed_run_still_analyses(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "killed", http_rows([5.0] * 400),
                       manifest(duration_s=200, status="running", phases=[],
                                stages=[{"name": "hold", "start": START, "end": None}]),
                       close=False)
    (folder / "samples" / ".part-000009.parquet.tmp").write_bytes(b"half")
    analysis = analyze(folder, thresholds_file(tmp_path, P95_BELOW_100))
    assert analysis.verdict.results[0].status == "PASS"
    assert analysis.verdict.coverage == pytest.approx(0.2, abs=0.01)
    assert analysis.verdict.status == "INCONCLUSIVE"  # 20 % of the plan is too little
    assert "covers only 20%" in analysis.verdict.validity[0]


def test_statistics_known_values() -> None:
    zero = ratio(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.3085, abs=1e-4)
    all_ok = ratio(100, 100)
    assert all_ok.high == 1.0 and all_ok.low == pytest.approx(0.9638, abs=1e-4)
    estimate = percentile(np.arange(1, 1001, dtype=np.float64), 0.5)
    assert estimate.value == 500.5
    assert estimate.low is not None and estimate.high is not None
    assert 460 < estimate.low < 500 < estimate.high < 540


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images = 0
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and (dict(attrs).get("src") or "").startswith("data:image/png;base64,"):
            self.images += 1

    def handle_data(self, data: str) -> None:
        self.text += data


def test_charts_and_reports_open(tmp_path: Path) -> None:
    rows = http_rows([5.0] * 300) + http_rows([500.0] * 10, start_s=40, name="metrics")
    folder = write_run(tmp_path / "run", rows, manifest())
    body = P95_BELOW_100 + P95_BELOW_100.replace("list-p95", "metrics-p95").replace(
        "name: list_active", "name: metrics").replace("min_samples: 100", "min_samples: 5") + \
        P95_BELOW_100.replace("list-p95", "hls-p95").replace(
            "{kind: http, name: list_active}", "{kind: hls_segment}")
    analysis = analyze(folder, thresholds_file(tmp_path, body))
    assert analysis.verdict.status == "FAIL" and analysis.verdict.exit_code == 1
    for chart in (folder / "charts").glob("*.png"):
        assert matplotlib.image.imread(chart).shape[0] > 100
    assert len(list((folder / "charts").glob("*.png"))) == 7
    parser = _Html()
    parser.feed((folder / "report.html").read_text())
    assert parser.images == 7 and "Verdict: FAIL" in parser.text
    suite = ET.parse(folder / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert [c.get("name") for c in suite.iter("testcase")] == ["list-p95", "metrics-p95",
                                                               "hls-p95"]
    summary = (folder / "summary.md").read_text()
    assert "**FAIL**" in summary and "❌" in summary and "❔" in summary


def test_compare_finds_a_regression_and_not_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    base = write_run(tmp_path / "a", http_rows(rng.gamma(4, 2.5, 800)), manifest())
    same = write_run(tmp_path / "b", http_rows(rng.gamma(4, 2.5, 800)), manifest())
    slow = write_run(tmp_path / "c", http_rows(rng.gamma(4, 2.5, 800) + 5), manifest())
    assert not any(c.worse for c in compare(base, same))
    (worse,) = compare(base, slow)
    assert worse.worse and worse.p_value < 0.01 and worse.verdict.startswith("WORSE (median")


def test_compare_names_a_small_significant_slowdown_and_a_worse_tail(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    base = write_run(tmp_path / "a", http_rows(rng.normal(100, 2, 2000)), manifest())
    # 3 % slower at the median: significant, below the 10 % rule.
    small = write_run(tmp_path / "b", http_rows(rng.normal(103, 2, 2000)), manifest())
    (row,) = compare(base, small)
    assert not row.worse and row.verdict == "worse, below the rule's limit"
    # Same median, one request in ten 40 % slower: the tail is worse, the median is not.
    tail = rng.normal(100, 2, 2000)
    tail[::10] *= 1.4
    (row,) = compare(base, write_run(tmp_path / "c", http_rows(tail), manifest()))
    assert row.worse_p95 and not row.worse_median and row.verdict == "WORSE (p95)"


def test_hls_stall_ratio(tmp_path: Path) -> None:
    def row(kind: str, latency: float, i: int) -> tuple[Any, ...]:
        ts = START + i
        return (ts, ts, kind, kind, latency, True, 200, None, 1000, "local", "v1", "s")

    rows = [row("hls_segment", 50.0, i) for i in range(10)] + [row("hls_stall", 2000.0, 11)]
    folder = write_run(tmp_path / "run", rows, manifest())
    body = """  - id: stalls
    checklist: "§13 playback"
    source: derived
    metric: hls_stall_ratio
    comparator: "<"
    limit: 0.05
"""
    verdict = judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, body)))
    (result,) = verdict.results
    assert result.observed == pytest.approx(2 / 22) and result.status == "FAIL"
