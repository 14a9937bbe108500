"""Soak statistics on synthetic runs with known trends: noise and small trends pass, a leak
fails; cycles, the harness's slope, the database limit; resuming a killed run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from analysis.load import load_run
from analysis.memory import memory_by_second
from analysis.stats import mann_kendall_p, theil_sen
from analysis.trends import MIN_BUCKETS, derived, memory_trends
from harness.soak.resume import prepare_resume, segment_phases
from records.errors import InputError
from tests.unit.synthetic import START, manifest, write_run

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 3600.0
MIB = 2**20


def resources(role: str, rss_at: Any, seed: int = 1) -> list[tuple[Any, ...]]:
    """One row a second for an hour; rss_at(t_s) plus 1 MiB of noise."""
    rng = np.random.default_rng(seed)
    return [(START + t, "h", role, 1, 1.0, int(rss_at(t) + rng.normal(0, MIB)), 0.1, 0, 0, 10, 0,
             None, None) for t in range(int(DURATION_S))]


def run_with(tmp_path: Path, rows: list[tuple[Any, ...]],
             events: list[tuple[Any, ...]] | None = None,
             metrics: list[tuple[Any, ...]] | None = None,
             gaps: list[dict[str, float]] | None = None) -> Any:
    folder = write_run(tmp_path, [], manifest(DURATION_S, gaps=gaps or []), events=events,
                       metrics=metrics)
    from records.recorder import Recorder

    recorder = Recorder(folder, flush_interval_s=3600)
    for row in rows:
        recorder.add("resources", row)
    recorder.close()
    return load_run(folder)


def test_noise_and_a_small_trend_pass_a_leak_fails(tmp_path: Path) -> None:
    flat = run_with(tmp_path / "flat", resources("api", lambda t: 100 * MIB))
    assert derived(flat, "memory_growth_share_max").value == 0.0
    small = run_with(tmp_path / "small", resources("api", lambda t: 100 * MIB * (1 + 0.02 * t /
                                                                                DURATION_S)))
    (trend,) = memory_trends(small)
    assert trend.significant and 0.01 < trend.growth_share < 0.03  # real, but under 5 %
    leak = run_with(tmp_path / "leak", resources("api", lambda t: 100 * MIB + 20 * MIB * t /
                                                 DURATION_S))
    share = derived(leak, "memory_growth_share_max").value
    assert 0.14 < share < 0.2  # 20 MiB over the hour; a steady leak settles at once


def test_a_step_while_settling_is_not_a_trend(tmp_path: Path) -> None:
    """PostgreSQL touching its shared buffers early looks like growth; it is left out."""
    stepped = run_with(tmp_path, resources("postgres", lambda t: (150 if t < 300 else 300) * MIB))
    assert derived(stepped, "memory_growth_share_max").value == 0.0


def test_one_stratum_is_scipys_theil_sen_and_kendall() -> None:
    """The stratified statistics reduce to the usual ones (ties included) on one stratum."""
    rng = np.random.default_rng(6)
    x = np.arange(60, dtype=np.float64) / 7
    y = np.round(0.3 * x + rng.normal(0, 1, 60), 1)
    ours, theirs = theil_sen(x, y), stats.theilslopes(y, x, alpha=0.95)
    assert (ours.value, ours.low, ours.high) == pytest.approx((theirs[0], theirs[2], theirs[3]))
    expected = stats.kendalltau(np.arange(60), y, method="asymptotic").pvalue
    assert mann_kendall_p(y) == pytest.approx(expected)


def test_a_step_at_a_gap_is_not_growth_but_growth_within_the_segments_is(
        tmp_path: Path) -> None:
    """A resumed run restarts the stack: PostgreSQL flat at 105 MiB before the kill at
    25 min and flat at 121.5 MiB after (as a CI run measured) is no leak. One fit over both
    read it as +16 % growth."""
    gaps = [{"start": START + 1500, "end": START + 1600}]
    def stepped(t: float) -> float:
        return (105 if t < 1500 else 121.5) * MIB
    rows = [row for row in resources("postgres", stepped) if not 1500 <= row[0] - START < 1600]
    run = run_with(tmp_path / "step", rows, gaps=gaps)
    assert derived(run, "memory_growth_share_max").value == 0.0
    (found,) = memory_trends(run)
    # Two stretches, the second beginning after the gap began (its first bucket holds the
    # first rows after the gap; a flat stretch settles at once).
    assert len(found.spans) == 2 and found.spans[1].start_s > START + 1500
    # The same rows with no gap recorded are one stretch: the step reads as significant growth.
    assert derived(run_with(tmp_path / "nogap", rows), "memory_growth_share_max").value > 0
    # 20 MiB an hour inside both stretches, on top of the step, still fails.
    def leaking(t: float) -> float:
        return stepped(t) + 20 * MIB * t / DURATION_S
    rows = [row for row in resources("postgres", leaking) if not 1500 <= row[0] - START < 1600]
    (found,) = memory_trends(run_with(tmp_path / "leak", rows, gaps=gaps))
    assert found.significant and 15 * MIB < found.slope_per_h < 25 * MIB
    assert 0.1 < found.growth_share < 0.2


def cycle_events(count: int) -> list[tuple[Any, ...]]:
    rows = []
    for n in range(1, count + 1):
        start = 300.0 * n
        rows += [(START + start, "cycle_started", None, None, float(n), None),
                 (START + start + 200, "cycle_idle_end", None, None, float(n), None)]
    return rows


def test_cycles_return_or_not(tmp_path: Path) -> None:
    healthy = run_with(tmp_path / "ok", resources("api", lambda t: 100 * MIB), cycle_events(3))
    assert derived(healthy, "cycle_memory_returned_ratio").value == 1.0
    # 15 MiB kept after every cycle: 100 → 115 → 130 → 145
    def leaking(t: float) -> float:
        return (100 + 15 * sum(1 for n in range(1, 4) if t >= 300 * n + 100)) * MIB
    leaky = run_with(tmp_path / "leak", resources("api", leaking), cycle_events(3))
    assert derived(leaky, "cycle_memory_returned_ratio").value == 0.0
    # Killed inside its first cycle: the line says so, it is not a bare "no data".
    started_only = [row for row in cycle_events(1) if row[1] == "cycle_started"]
    killed = run_with(tmp_path / "killed", resources("api", lambda t: 100 * MIB), started_only)
    reason = derived(killed, "cycle_memory_returned_ratio").unjudgeable
    assert reason is not None and "1 cycle(s) started, none reached the end" in reason


def test_harness_slope_and_database_limit(tmp_path: Path) -> None:
    harness = resources("harness", lambda t: 200 * MIB + 3e6 * t / 3600)
    metrics = [(START + t, "postgres", "pg_connections_share", "", 0.96 if 600 <= t < 630
                else 0.3) for t in range(0, int(DURATION_S), 5)]
    run = run_with(tmp_path, harness, metrics=metrics)
    slope = derived(run, "harness_memory_slope_mb_per_h")
    assert 2.5 < slope.value < 3.5 and slope.low is not None and slope.low > 1
    assert derived(run, "db_connections_at_limit_s").value == 30.0
    assert math.isnan(derived(run, "memory_growth_share_max").value)  # no target role


def test_a_role_with_pss_is_judged_on_pss(tmp_path: Path) -> None:
    """Backends warming shared buffers: summed RSS climbs 150 → 450 MiB, PSS stays flat."""
    rng = np.random.default_rng(3)
    rows = []
    for t in range(int(DURATION_S)):
        rss = int((150 + 300 * t / DURATION_S) * MIB + rng.normal(0, MIB))
        pss = int(100 * MIB + rng.normal(0, MIB)) if t % 5 == 0 else None
        rows.append((START + t, "h", "postgres", 1, 1.0, rss, 0.1, 0, 0, 10, 0, pss, None))
    run = run_with(tmp_path, rows)
    assert derived(run, "memory_growth_share_max").value == 0.0
    (found,) = memory_trends(run)
    assert 95 * MIB < found.baseline < 105 * MIB and found.n >= MIN_BUCKETS
    # Without PSS (PromQL rows, folders from before it was recorded) the RSS climb counts.
    rss_only = run_with(tmp_path / "rss", [(*row[:-2], None, None) for row in rows])
    assert derived(rss_only, "memory_growth_share_max").value > 0.5


def test_a_role_with_anonymous_pss_is_judged_on_it(tmp_path: Path) -> None:
    """Shared buffers that PSS counts only while mapped: more backends from minute 30 take
    PostgreSQL's summed PSS from 45 to 62 MiB (as measured on the reference stack) while what
    the processes allocated themselves stays flat. The footprint (share of host memory) still
    reads PSS."""
    rng = np.random.default_rng(4)
    rows = []
    for t in range(0, int(DURATION_S), 5):
        shared = 17 * MIB if t >= DURATION_S / 2 else 0
        anon = int(30 * MIB + rng.normal(0, MIB / 4))
        pss = int(anon + 15 * MIB + shared)
        rows.append((START + t, "h", "postgres", 1, 1.0, 3 * pss, 0.1, 0, 0, 10, 0, pss, anon))
    run = run_with(tmp_path / "anon", rows)
    assert derived(run, "memory_growth_share_max").value == 0.0
    (found,) = memory_trends(run)
    assert 29 * MIB < found.baseline < 31 * MIB
    assert memory_by_second(run.resources, ["postgres"]).postgres.max() > 60 * MIB
    pss_only = run_with(tmp_path / "pss", [(*row[:-1], None) for row in rows])
    assert derived(pss_only, "memory_growth_share_max").value > 0.05  # over the limit


def _round_trips(rise_ms: float) -> list[tuple[Any, ...]]:
    """Two round trips a second for an hour, 5 ms rising by `rise_ms` over the hour."""
    rng = np.random.default_rng(5)
    return [(START + t / 2, START + t / 2, "ws_rtt", "stream_info",
             5.0 + rise_ms * t / (2 * DURATION_S) + rng.exponential(0.5), True, None, None, 0,
             "local", "v1", "s1") for t in range(int(2 * DURATION_S))]


def test_latency_drift_needs_to_be_large_in_ms_too(tmp_path: Path) -> None:
    """5 → 9 ms is significant and 80 % of the baseline, but 4 ms is noise on a loaded host;
    5 → 35 ms is a drift."""
    small = load_run(write_run(tmp_path / "small", _round_trips(4.0), manifest(DURATION_S)))
    assert derived(small, "ws_rtt_drift_share").value == 0.0
    large = load_run(write_run(tmp_path / "large", _round_trips(30.0), manifest(DURATION_S)))
    assert derived(large, "ws_rtt_drift_share").value > 1.0


def test_the_harness_slope_is_per_process(tmp_path: Path) -> None:
    """A resumed run is a new generator process at its own level: a flat 150 MiB until the
    kill at 25 min, a flat 200 MiB after. One slope over both would be a 'leak'."""
    rows = [*resources("harness", lambda t: 150 * MIB)[:1500],
            *resources("harness", lambda t: 200 * MIB, seed=2)[1600:]]
    document = manifest(DURATION_S, gaps=[{"start": START + 1500, "end": START + 1600}])
    folder = write_run(tmp_path, [], document)
    from records.recorder import Recorder

    recorder = Recorder(folder, flush_interval_s=3600)
    for row in rows:
        recorder.add("resources", row)
    recorder.close()
    run = load_run(folder)
    slope = derived(run, "harness_memory_slope_mb_per_h")
    assert abs(slope.value) < 1.0, slope
    (found,) = [t for t in memory_trends(run) if t.name == "harness"]
    assert found.start_s > START + 1500  # the longer, later process


def killed_soak(folder: Path, status: str = "running") -> Path:
    document = manifest(600.0, status=status)
    document.update(run_id="r1", scenario_file=str(ROOT / "scenarios/smoke.yaml"),
                    overrides={"viewers.per_stream": "3"}, started_at=START,
                    stages=[{"name": "ramp", "start": START, "end": START + 5},
                            {"name": "hold", "start": START + 5, "end": None}])
    events = [*cycle_events(1), (START + 250, "viewer_connected", "s", "v", 0.0, None)]
    return write_run(folder, [], document, events=events)


def test_resume_reads_what_a_killed_run_left(tmp_path: Path) -> None:
    resume = prepare_resume(killed_soak(tmp_path / "r1"))
    assert resume.run_id == "r1" and resume.cycles_done == 1
    assert resume.stages[-1]["end"] == START + 500  # the newest row, not the manifest
    assert resume.remaining_s == pytest.approx(600 - 500)
    assert resume.gaps[-1]["start"] == START + 500
    resumed = [{"name": "ramp", "start": START + 900, "end": START + 905},
               {"name": "hold", "start": START + 905, "end": START + 1000}]
    phases = [(p["name"], p["start"] - START, p["end"] - START)
              for p in segment_phases([*resume.stages, *resumed], 3.0, 3.0)]
    assert phases == [("warmup", 0, 3), ("steady", 3, 500), ("warmup", 900, 903),
                      ("steady", 903, 997), ("cooldown", 997, 1000)]


def test_resume_reads_a_folder_whose_parts_were_compacted(tmp_path: Path) -> None:
    """A soak compacts its parts every few minutes: a kill after that leaves only
    `compact-*.parquet` files. Reading parts alone once found no data, put the gap at epoch 0
    and planned the resumed run for 56 years."""
    folder = killed_soak(tmp_path / "r1")
    for part in folder.glob("*/part-*.parquet"):  # what compact() leaves of a single part
        number = part.stem.split("-")[1]
        part.rename(part.with_name(f"compact-{number}-{number}.parquet"))
    assert list(folder.glob("events/compact-*.parquet"))
    assert not list(folder.glob("*/part-*.parquet"))
    resume = prepare_resume(folder)
    assert resume.cycles_done == 1 and resume.gaps[-1]["start"] == START + 500
    assert resume.remaining_s == pytest.approx(600 - 500)
    for table in ("samples", "events", "resources", "metrics"):
        for path in (folder / table).iterdir():
            path.unlink()
    with pytest.raises(InputError, match="no rows recorded"):
        prepare_resume(folder)


def test_resume_refuses_a_completed_run(tmp_path: Path) -> None:
    folder = killed_soak(tmp_path / "done", status="completed")
    with pytest.raises(InputError, match="completed"):
        prepare_resume(folder)
    older = killed_soak(tmp_path / "v1")
    document = json.loads((older / "manifest.json").read_text())
    (older / "manifest.json").write_text(json.dumps({**document, "schema_version": 1}))
    with pytest.raises(InputError, match="results format 1"):
        prepare_resume(older)
    (folder / "manifest.json").write_text(json.dumps({"status": "running", "run_id": "r",
                                                      "schema_version": 3}))
    with pytest.raises(InputError) as failure:
        prepare_resume(folder)
    assert any("never started" in p for p in failure.value.problems)
    (folder / "manifest.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(InputError, match=r"--resume: .*no schema_version"):
        prepare_resume(folder)


def test_the_harness_growth_reads_its_anonymous_memory(tmp_path: Path) -> None:
    """RSS rising 20 MiB over the hour (library pages touched late) while the anonymous PSS,
    read every 5 s, stays flat: no growth."""
    rng = np.random.default_rng(3)
    rows = []
    for t in range(int(DURATION_S)):
        rss = int(200 * MIB + 20 * MIB * t / DURATION_S + rng.normal(0, MIB))
        anon = int(120 * MIB + rng.normal(0, MIB)) if t % 5 == 0 else None
        rows.append((START + t, "h", "harness", 1, 1.0, rss, 0.1, 0, 0, 10, 0,
                     None if anon is None else anon + 30 * MIB, anon))
    slope = derived(run_with(tmp_path, rows), "harness_memory_slope_mb_per_h")
    assert abs(slope.value) < 1.0, slope
    rss_only = [(*row[:11], None, None) for row in rows]
    assert derived(run_with(tmp_path / "rss", rss_only),
                   "harness_memory_slope_mb_per_h").value > 15


def test_a_warm_up_settles_and_a_trend_on_too_little_time_is_inconclusive(
        tmp_path: Path) -> None:
    """Memory climbing 15 % over the first 12 minutes, then flat: the data says where it
    settled, and the flat rest is no growth. The same shape over 20 minutes has too little
    settled time to judge a trend at all."""
    def warm(t: float) -> float:
        return 100 * MIB * (1 + 0.15 * min(t, 720.0) / 720.0)
    hour = run_with(tmp_path / "hour", resources("api", warm))
    (found,) = memory_trends(hour)
    assert found.start_s >= START + 600
    assert derived(hour, "memory_growth_share_max").value == 0.0
    assert derived(hour, "memory_growth_share_max").unjudgeable is None
    short = [row for row in resources("api", warm) if row[0] - START < 1200]
    estimate = derived(run_with(tmp_path / "short", short), "memory_growth_share_max")
    assert estimate.unjudgeable is not None and "needs ≥ 30" in estimate.unjudgeable
    # Two minutes: not even enough buckets to fit one. Said so, not "no data".
    minutes = [row for row in resources("api", warm) if row[0] - START < 120]
    estimate = derived(run_with(tmp_path / "minutes", minutes), "memory_growth_share_max")
    assert estimate.unjudgeable is not None
    assert "too little settled time to fit a memory trend" in estimate.unjudgeable


def test_a_short_leak_is_inconclusive_not_pass_and_a_long_one_fails(tmp_path: Path) -> None:
    def leak(t: float) -> float:
        return 100 * MIB + 40 * MIB * t / DURATION_S
    short = [row for row in resources("api", leak) if row[0] - START < 900]
    estimate = derived(run_with(tmp_path / "short", short), "memory_growth_share_max")
    assert estimate.unjudgeable is not None
    long = derived(run_with(tmp_path / "long", resources("api", leak)),
                   "memory_growth_share_max")
    assert long.unjudgeable is None and long.value > 0.3
