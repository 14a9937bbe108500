"""Runs with workers: what the verdict must know about who took part. A worker whose clock
may be off the master's by more than the scenario's limit makes every latency measured
across clocks INCONCLUSIVE. A worker lost while the load ran means the planned load was not
held after it, so no threshold PASSes on that run; and its viewers vanished without a record
of closing, so a FAIL drawn from the harness's own account of viewers (events, derived
figures) is INCONCLUSIVE too. A FAIL of measured samples stands: those errors and latencies
were observed, on less load than planned (docs/distributed.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from analysis.load import RunData
from records.schema import CROSS_CLOCK_KINDS

if TYPE_CHECKING:  # both import what imports this module
    from analysis.judge import Result
    from analysis.thresholds import Threshold

DEFAULT_MAX_OFFSET_MS = 5.0
_RTT = re.compile(r"rtt_ms=([0-9.]+)")


@dataclass(frozen=True)
class ClockRound:
    """One clock round of a worker: its offset from the master and the half round trip
    that bounds the error of that figure."""

    offset_ms: float
    bound_ms: float

    def certainly_beyond(self, limit_ms: float) -> bool:
        return abs(self.offset_ms) - self.bound_ms > limit_ms

    def within(self, limit_ms: float) -> bool:
        return abs(self.offset_ms) + self.bound_ms <= limit_ms


def max_offset_ms(run: RunData) -> float:
    spec = run.manifest.distributed
    return spec.max_clock_offset_ms if spec is not None else DEFAULT_MAX_OFFSET_MS


def clock_rounds(run: RunData) -> dict[str, list[ClockRound]]:
    """Every `worker_clock` event, by worker."""
    events = run.events[run.events.type == "worker_clock"]
    rounds: dict[str, list[ClockRound]] = {}
    for worker, offset, detail in zip(events.user, events.value, events.detail, strict=True):
        found = _RTT.search(str(detail))
        if found is not None:
            rounds.setdefault(str(worker), []).append(
                ClockRound(float(offset), float(found.group(1)) / 2))
    return rounds


def clock_problems(run: RunData) -> list[str]:
    """A line per worker whose clock is beyond the limit, or cannot be bounded within it."""
    limit = max_offset_ms(run)
    problems = []
    for worker, rounds in sorted(clock_rounds(run).items()):
        off = [r for r in rounds if r.certainly_beyond(limit)]
        tightest = min(rounds, key=lambda r: r.bound_ms)
        if off:
            worst = max(off, key=lambda r: abs(r.offset_ms))
            problems.append(f"{worker}'s clock is {worst.offset_ms:+.1f} ms "
                            f"(± {worst.bound_ms:.1f} ms) off the master's, beyond the "
                            f"{limit:g} ms limit (distributed.max_clock_offset_ms)")
        elif not tightest.within(limit):
            problems.append(f"{worker}'s clock offset could not be bounded within {limit:g} ms "
                            f"(best: {tightest.offset_ms:+.1f} ± {tightest.bound_ms:.1f} ms)")
    return problems


def worker_losses(run: RunData) -> list[str]:
    """A line per worker lost while the load ran, with when and what it held."""
    lost = run.events[run.events.type == "worker_lost"]
    return [f"{worker} lost at +{ts - run.start_s:.0f} s ({detail}): the planned load "
            "was not held after it"
            for ts, worker, detail in zip(lost.ts, lost.user, lost.detail, strict=True)]


def lost_worker_phases(run: RunData) -> list[dict[str, float | str]]:
    """From each worker's loss to the run's end: the load was below plan (charts shade it)."""
    lost = run.events[run.events.type == "worker_lost"]
    return [{"name": "worker_lost", "start": float(ts), "end": max(float(ts), run.end_s)}
            for ts in lost.ts]


def crosses_clocks(threshold: Threshold) -> bool:
    """Whether the threshold judges a latency that subtracts the target's time stamp from a
    generator's clock."""
    kinds = threshold.filter.get("kind") if threshold.source == "samples" else None
    wanted = kinds if isinstance(kinds, list) else [kinds]
    return threshold.field == "latency_ms" and any(k in CROSS_CLOCK_KINDS for k in wanted)


def qualify(run: RunData, judged: list[tuple[Threshold, Result]]) -> list[Result]:
    """The results as the workers' clocks and losses allow them to stand."""
    clock, losses = clock_problems(run), worker_losses(run)
    results = []
    for threshold, result in judged:
        if clock and crosses_clocks(threshold) and result.status in ("PASS", "FAIL"):
            result = replace(result, status="INCONCLUSIVE",
                             reason=f"{'; '.join(clock)}: this latency compares the target's "
                                    f"clock with the worker's (measured: {result.reason})")
        elif losses and (result.status == "PASS" or (result.status == "FAIL"
                         and threshold.source != "samples")):
            result = replace(result, status="INCONCLUSIVE",
                             reason=f"{'; '.join(losses)} (measured: {result.reason})")
        results.append(result)
    return results
