"""A verdict claims only what the data shows: an empty population is NOT APPLICABLE (or
INCONCLUSIVE when planned), never PASS; reasons read as true sentences in the checklist's units;
each result says how much of the run it judged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analysis.analyze import analyze
from analysis.judge import judge
from analysis.load import load_run
from analysis.thresholds import load_thresholds
from analysis.units import show
from records.errors import InputError
from tests.unit.synthetic import START, http_rows, manifest, thresholds_file, write_run

NO_DROPS = """  - id: viewer-drops
    checklist: "§10 concurrency: stable"
    source: events
    filter: {type: viewer_dropped}
    aggregation: count
    comparator: "=="
    limit: 0
    min_samples: 0
    population: viewers
"""
NO_STALLS = """  - id: hls-stall-ratio
    checklist: "§13 playback"
    source: derived
    metric: hls_stall_ratio
    comparator: "<"
    limit: 0.02
    population: hls_viewers
"""
API_OK = """  - id: api-success
    checklist: "§10 stability"
    source: samples
    filter: {kind: http}
    aggregation: success_ratio
    comparator: ">="
    limit: 0.999
"""


def _viewer_rows(count: int) -> list[tuple[Any, ...]]:
    return [(START + 1, START + 1, "ws_event", "connection_established", 1.0, True, None,
             None, 0, "local", f"v{i}", "s1") for i in range(count)]


def _judge(tmp_path: Path, rows: list[tuple[Any, ...]], body: str,
           **extra: Any) -> list[Any]:
    folder = write_run(tmp_path / "run", rows, manifest(**extra))
    return judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, body))).results


def test_no_drop_among_no_viewers_is_not_applicable(tmp_path: Path) -> None:
    (result,) = _judge(tmp_path, http_rows([5.0] * 10), NO_DROPS)
    assert result.status == "NOT_APPLICABLE" and "no viewers held" in result.reason


def test_no_drop_among_planned_viewers_that_never_connected_is_inconclusive(
        tmp_path: Path) -> None:
    (result,) = _judge(tmp_path, http_rows([5.0] * 10), NO_DROPS, viewers=50)
    assert result.status == "INCONCLUSIVE" and "planned" in result.reason


def test_no_drop_among_held_viewers_is_evidence(tmp_path: Path) -> None:
    (result,) = _judge(tmp_path, _viewer_rows(50), NO_DROPS, viewers=50)
    assert result.status == "PASS"
    assert result.population_n == 50 and "among 50 viewers held" in result.reason
    assert result.n == 50  # the evidence is the 50 viewers held, not the 0 drops found


def test_hls_stalls_without_hls_viewers_are_not_a_pass(tmp_path: Path) -> None:
    (result,) = _judge(tmp_path, _viewer_rows(10), NO_STALLS, viewers=10)
    assert result.status == "NOT_APPLICABLE"
    planned = manifest(viewers=10)
    planned["scenario"]["viewers"] = {"hls_share": 0.2}
    folder = write_run(tmp_path / "planned", _viewer_rows(10), planned)
    (result,) = judge(load_run(folder), load_thresholds(tmp_path / "t.yaml")).results
    assert result.status == "INCONCLUSIVE"


def test_a_run_where_nothing_passed_is_not_a_pass(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run", http_rows([5.0] * 10), manifest())
    verdict = judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, NO_DROPS)))
    assert verdict.status == "INCONCLUSIVE" and verdict.exit_code == 3


@pytest.mark.parametrize("value", ["pass", "skipped"])
def test_below_min_pass_is_refused(tmp_path: Path, value: str) -> None:
    body = NO_DROPS.replace("    population: viewers\n", f"    below_min: {value}\n")
    with pytest.raises(InputError) as caught:
        load_thresholds(thresholds_file(tmp_path, body))
    assert "below_min" in str(caught.value.problems)


def test_no_shipped_threshold_passes_without_data() -> None:
    for path in Path("scenarios/thresholds").glob("*.yaml"):
        assert "below_min: pass" not in path.read_text(), path
        load_thresholds(path)


def test_a_failing_reason_reads_true(tmp_path: Path) -> None:
    rows = http_rows([5.0] * 90) + http_rows([5.0] * 10, start_s=20, ok=False)
    (result,) = _judge(tmp_path, rows, API_OK)
    assert result.status == "FAIL"
    assert result.reason == "success_ratio 90 %, not >= 99.9 %: breached"
    (result,) = _judge(tmp_path / "ok", http_rows([5.0] * 90), API_OK)
    assert result.reason == "success_ratio 100 % >= 99.9 %: holds"


@pytest.mark.parametrize("value,unit,text", [
    (0.099, "ratio", "9.9 %"), (7.478e7, "bytes", "71.3 MiB"), (2.68435e8, "bytes", "256 MiB"),
    (1.687e4 * 2**20, "bytes", "16.5 GiB"), (20.61, "ms", "20.6 ms"), (float("inf"), "s", "never"),
    (0.07127, "ratio", "7.13 %"), (123456.0, "ms", "123456 ms")])
def test_figures_in_the_checklists_units(value: float, unit: str, text: str) -> None:
    assert show(value, unit) == text


def test_each_result_says_how_much_of_the_run_it_judged(tmp_path: Path) -> None:
    body = API_OK + "    exclude_phases: [fault]\n"
    fault = {"id": "f", "title": "kill", "status": "completed", "start": START + 40.0,
             "end": START + 50.0}
    folder = write_run(tmp_path / "run", http_rows([5.0] * 1000), manifest(faults=[fault]))
    (result,) = judge(load_run(folder), load_thresholds(thresholds_file(tmp_path, body))).results
    assert (result.judged_s, result.run_s) == (90.0, 100.0)
    analyze(folder, tmp_path / "t.yaml", draw=False)
    summary = (folder / "summary.md").read_text()
    assert "90 of 100 s (90 %)" in summary
    assert "e+0" not in summary
    # What produced it: the threshold file and its hash, the harness that analysed it.
    import hashlib
    import json
    digest = hashlib.sha256((tmp_path / "t.yaml").read_bytes()).hexdigest()
    facts = json.loads((folder / "verdict.json").read_text())["run"]
    assert facts["thresholds_sha256"] == digest and f"(sha256 {digest[:12]})" in summary
    assert "analysed by 0.1.0" in summary


def test_read_table_takes_a_string_path_as_the_readme_shows(tmp_path: Path) -> None:
    from analysis.load import read_table

    folder = write_run(tmp_path / "run", http_rows([5.0] * 10), manifest())
    assert len(read_table(str(folder), "samples")) == 10
    assert load_run(str(folder)).manifest.run_id == "synthetic"
    with pytest.raises(InputError):
        read_table(str(folder), "sample")


def _failover_results(tmp_path: Path, reconnect_ok: bool | None,
                      interrupted: bool = True) -> dict[str, str]:
    samples = _viewer_rows(10)
    events: list[tuple[Any, ...]] = []
    if interrupted:
        events.append((START + 40, "publish_interrupted", "s1", None, 0.0, None))
    if reconnect_ok is not None:
        samples.append((START + 40, START + 40, "rtmp_publish", "reconnect", 2500.0,
                        reconnect_ok, None, None, 0, "local", None, "s1"))
    if reconnect_ok is False:
        events.append((START + 41, "stream_ended_seen", "s1", "v0", None, "connection_lost"))
    folder = write_run(tmp_path / "run", samples, manifest(viewers=10), events)
    verdict = judge(load_run(folder), load_thresholds(Path("scenarios/thresholds/failover.yaml")))
    return {r.id: r.status for r in verdict.results}


@pytest.mark.parametrize("reconnect_ok,interrupted,resumed,not_ended", [
    (True, True, "PASS", "PASS"), (False, True, "FAIL", "FAIL"),
    (None, True, "FAIL", "PASS"), (None, False, "NOT_APPLICABLE", "PASS")])
def test_an_interrupted_broadcast_must_come_back(tmp_path: Path, reconnect_ok: bool | None,
                                                 interrupted: bool, resumed: str,
                                                 not_ended: str) -> None:
    found = _failover_results(tmp_path, reconnect_ok, interrupted)
    assert (found["broadcast-resumed"], found["streams-not-ended-by-faults"]) == \
        (resumed, not_ended)
