"""Pass/fail charts (matplotlib, PNG): the verdict scorecard, latency over time with threshold
lines and shaded excluded phases, throughput and errors, viewer channel health, resources per
role with their limits, viewer-count consistency, broadcaster timeline. Each function writes
one file and returns its path."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from analysis import consistency as consistency_figures
from analysis import fault_verdicts as fault_figures
from analysis import trends as trend_figures
from analysis.fault_verdicts import judged_phases
from analysis.judge import Result, Verdict, label
from analysis.load import RunData
from analysis.memory import role_memory
from analysis.metrics import (
    TARGET_ROLES,
    connected_series,
    latency_series,
    role_shares,
    target_host,
)
from analysis.trends import Trend
from analysis.units import MIB, number, show
from records.schema import HTTP, WS_EVENT, WS_RECONNECT, WS_RTT

GREEN, RED, GREY, AMBER, PURPLE = "#2e7d32", "#c62828", "#9e9e9e", "#f9a825", "#6a1b9a"
STATUS_COLOURS = {"PASS": GREEN, "FAIL": RED, "INCONCLUSIVE": GREY, "NOT_APPLICABLE": "#cfd8dc"}
# Two limits on one panel (100 ms and 500 ms) must differ by more than their status colour.
LIMIT_STYLES = ("--", "-.", ":")
PLAIN_NUMBERS = FuncFormatter(lambda value, _: f"{value:g}")
MEASURE_LABELS = {"anon": "anon PSS", "pss": "PSS", "rss": "RSS"}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _shade_phases(ax: Axes, run: RunData) -> None:
    for phase in judged_phases(run):
        if phase["name"] == "steady":
            continue
        colour = {"fault": RED, "recovery": AMBER, "worker_lost": PURPLE}.get(phase["name"],
                                                                           GREY)
        label = "worker lost: load below plan" if phase["name"] == "worker_lost" else \
            f"{phase['name']} (not judged)"
        ax.axvspan(phase["start"] - run.start_s, phase["end"] - run.start_s, color=colour,
                   alpha=0.12, label=label)


def _legend(ax: Axes) -> None:
    """The legend beside the panel, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


# Percentile lines keep their own colours: a limit drawn in a status colour (green, red) must
# never be mistaken for one of them.
PERCENTILE_STYLES = (("p50", ":", "#1f77b4"), ("p95", "-", "#ff7f0e"), ("p99", "--", "#7b1fa2"))


def _percentiles(ax: Axes, frame: pd.DataFrame, x_scale: float = 1.0, prefix: str = "") -> None:
    """p50/p95/p99 per window of `frame` (latency_series) as steps over each window."""
    if frame.empty:
        return
    for column, style, colour in PERCENTILE_STYLES:
        ax.step(frame.t_s / x_scale, frame[column], style, where="post", color=colour,
                label=f"{prefix}{column}")


def scorecard(verdict: Verdict, path: Path) -> Path:
    """One bar per threshold: observed as a share of its limit, coloured by result; lines
    without evidence (NOT APPLICABLE, INCONCLUSIVE) get no bar, only their word."""
    results = verdict.results
    fig, ax = plt.subplots(figsize=(13, 0.7 * len(results) + 1.6))
    for row, result in enumerate(results):
        share = _share_of_limit(result)
        if share is not None:  # a zero (no errors, == 0) still shows its colour
            ax.barh(row, max(share, 0.02), color=STATUS_COLOURS[result.status], alpha=0.9)
        text = f"{label(result.status)}  {result.show(result.observed)} {result.comparator} " \
               f"{result.show(result.limit)}"
        ax.text(min(share or 0, 1.9) + 0.02, row, text, va="center", fontsize=8,
                color="black" if share is not None else "#616161")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="limit")
    ax.set_yticks(range(len(results)), [_row_label(r) for r in results], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 2.6)
    ax.set_xlabel("observed / limit (the dashed line is the limit)")
    ax.set_title(f"Verdict: {verdict.status}", color=STATUS_COLOURS[verdict.status],
                 fontweight="bold")
    return _save(fig, path)


def _amount(value: float, unit: str) -> str:
    """A limit as a label: "16.5 GiB", "60 %" (never "1.687e+04 MiB")."""
    if unit.strip() == "MiB":
        return show(value * MIB, "bytes")
    return f"{number(value)}{unit}"


def _secs(value: float | None) -> str:
    return "never ended" if value is None else f"{value:.1f} s"


def _row_label(result: Result) -> str:
    """The threshold's id over its checklist line, wrapped to two lines of 60 characters so
    the axis keeps room for every label."""
    lines = textwrap.wrap(result.checklist, 60)
    shown = lines[:1] + ([textwrap.shorten(" ".join(lines[1:]), 60)] if len(lines) > 1 else [])
    return "\n".join([result.id, *shown])


def _share_of_limit(result: Result) -> float | None:
    if result.observed is None or math.isnan(result.observed):
        return None
    if result.comparator in (">", ">="):  # higher is better: show limit/observed
        return result.limit / result.observed if result.observed else 2.5
    if result.limit == 0:
        return 0.0 if result.observed == 0 else 2.5
    return min(result.observed / result.limit, 2.5)


def latency(run: RunData, verdict: Verdict, path: Path) -> Path:
    """p50/p95/p99 over time for API, push and round-trip latency, with their limits."""
    series = [(HTTP, None, "API requests"), (WS_EVENT, None, "WebSocket push"),
              (WS_RTT, None, "WebSocket round trip")]
    fig, axes = plt.subplots(len(series), 1, figsize=(13, 8), sharex=True)
    for ax, (kind, name, title) in zip(axes, series, strict=True):
        frame = latency_series(run, kind, 10.0, name)
        _percentiles(ax, frame)
        limits = [r for r in verdict.results if r.unit == "ms" and r.kind == kind]
        for style, result in zip(LIMIT_STYLES * 3, limits, strict=False):
            ax.axhline(result.limit, color=STATUS_COLOURS[result.status], linewidth=1.8,
                       linestyle=style, label=f"limit {result.id} {result.limit:g} ms "
                       f"({label(result.status)})")
        _shade_phases(ax, run)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("latency (ms, log above 1)")
        ax.set_yscale("symlog", linthresh=1)
        ax.yaxis.set_major_formatter(PLAIN_NUMBERS)
        # Latencies start at 0; a negative axis only appears for a clock-skewed push delay.
        lowest = float(frame.p50.min()) if not frame.empty else 0.0
        ax.set_ylim(bottom=min(0.0, lowest))
        _legend(ax)
    axes[-1].set_xlabel("time since start (s)")
    return _save(fig, path)


def throughput(run: RunData, path: Path) -> Path:
    """Requests and events per second, and errors per second."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 6), sharex=True)
    samples = run.samples
    t = (samples.ts - run.start_s).astype(int)
    for kind, name in ((HTTP, "API requests/s"), (WS_EVENT, "WebSocket events/s")):
        counts = samples[samples.kind == kind].groupby(t[samples.kind == kind]).size()
        top.plot(counts.index, counts.to_numpy(), label=name)
    errors = samples[~samples.ok].groupby(t[~samples.ok]).size()
    bottom.bar(errors.index, errors.to_numpy(), color=RED, width=1.0, label="errors/s")
    for ax in (top, bottom):
        _shade_phases(ax, run)
        _legend(ax)
    top.set_title("Throughput")
    top.set_ylabel("per second")
    bottom.set_title("Errors")
    bottom.set_ylabel("errors per second")
    bottom.set_xlabel("time since start (s)")
    return _save(fig, path)


def viewers(run: RunData, path: Path) -> Path:
    """Viewer channel health: connected vs planned with drops and reconnects, push latency."""
    fig, (count, push) = plt.subplots(2, 1, figsize=(13, 6), sharex=True)
    series = connected_series(run)
    if not series.empty:
        count.step(series.t_s, series.connected, where="post", label="connected")
    planned = run.manifest.planned.viewers
    if planned:
        count.axhline(planned, color=GREEN, linestyle="--", label=f"planned ({planned})")
    for kind, marker, colour in (("viewer_dropped", "x", RED), (WS_RECONNECT, "^", AMBER)):
        frame = run.events[run.events.type == kind] if kind == "viewer_dropped" else \
            run.samples[run.samples.kind == kind]
        if not frame.empty:
            count.plot(frame.ts - run.start_s, [0] * len(frame), marker, color=colour,
                       label=kind.replace("_", " "))
    count.set_title("Viewer channel: open sockets")
    count.set_ylabel("viewers")
    _percentiles(push, latency_series(run, WS_EVENT, 10.0), prefix="push ")
    push.set_title("Push latency (receive time - server timestamp)")
    push.set_ylabel("latency (ms)")
    push.set_xlabel("time since start (s)")
    for ax in (count, push):
        _shade_phases(ax, run)
        _legend(ax)
    return _save(fig, path)


def _limit_line(ax: Axes, verdict: Verdict, metric: str, scale: float = 1.0,
                unit: str = "") -> None:
    """The limit of the threshold judging `metric` (derived metric or threshold id); a limit
    far above the data is named in the legend instead of flattening the lines under it."""
    top = ax.get_ylim()[1]
    for result in verdict.results:
        if metric not in (result.aggregation, result.id):
            continue
        limit = result.limit * scale
        text = f"{result.id} limit {_amount(limit, unit)} ({label(result.status)})"
        if limit <= 3 * top:
            ax.axhline(limit, color=STATUS_COLOURS[result.status], linestyle="--", label=text)
        else:  # drawn to scale it would flatten the data: say so on the chart itself
            ax.plot([], [], linestyle="--", color=STATUS_COLOURS[result.status],
                    label=f"{text}, far above the chart")
            ax.annotate(f"↑ limit {_amount(limit, unit)}", xy=(0.01, 0.97),
                        xycoords="axes fraction", va="top", fontsize=8,
                        color=STATUS_COLOURS[result.status])


def resources(run: RunData, verdict: Verdict, path: Path) -> Path:
    """CPU per role as a share of the target host's cores and RSS per role, the target's
    total, their threshold lines; the host's disk busy time."""
    fig, (cpu, mem, disk) = plt.subplots(3, 1, figsize=(13, 8), sharex=True)
    shares = role_shares(run)
    shares = shares.assign(t_s=shares.second - run.start_s)
    memory_mib = float(target_host(run).get("memory_bytes") or 0) / 2**20
    for role, group in shares.groupby("role"):
        style = ":" if role == "harness" else "-"
        cpu.plot(group.t_s, 100 * group.cpu_share, style, linewidth=1, label=str(role))
        mem.plot(group.t_s, memory_mib * group.mem_share, style, linewidth=1, label=str(role))
    target = shares[shares.role.isin(TARGET_ROLES)].groupby("t_s")[
        ["cpu_share", "mem_share"]].sum()
    if not target.empty:
        cpu.plot(target.index, 100 * target.cpu_share, color="black", label="target total")
        mem.plot(target.index, memory_mib * target.mem_share, color="black",
                 label="target total")
    _limit_line(cpu, verdict, "target_cpu_share_p95", 100, " %")
    _limit_line(mem, verdict, "target_memory_share_max", memory_mib, " MiB")
    busy = run.metrics[run.metrics.series == "host_disk_busy_pct"]
    disk.plot(busy.ts - run.start_s, busy.value, color=AMBER, label="disk busy")
    _limit_line(disk, verdict, "disk-io", 1, " %")
    cpu.set_title("CPU per role (100 % = all the target host's cores)")
    cpu.set_ylabel("CPU (%)")
    mem.set_title(f"Resident memory per role (target host: {memory_mib / 1024:.1f} GiB)")
    mem.set_ylabel("RSS (MiB)")
    disk.set_title("Host disk busy time")
    disk.set_ylabel("busy (%)")
    disk.set_xlabel("time since start (s)")
    for ax in (cpu, mem, disk):
        _shade_phases(ax, run)
        _legend(ax)
    return _save(fig, path)


CONSISTENCY_MARKERS = {"ws": (".", "told over the socket"), "api": ("o", "GET /streams/{id}"),
                       "metrics": ("s", "/metrics gauge"), "db": ("^", "database sessions")}
MAX_STREAM_PANELS = 6


def consistency(run: RunData, path: Path) -> Path:
    """Per stream (the first few): the sockets the harness held against every viewer count
    the target reported, by source."""
    events = run.events
    streams = list(dict.fromkeys(events[events.type == "stream_created"].stream))
    shown = streams[:MAX_STREAM_PANELS] or [""]
    fig, axes = plt.subplots(len(shown), 1, figsize=(13, 2.2 * len(shown) + 0.8), sharex=True,
                             squeeze=False)
    readings = consistency_figures.reported_counts(run, judged_only=False)
    for ax, stream in zip(axes[:, 0], shown, strict=True):
        held = events[events.type.isin(["viewer_connected", "viewer_closed"]) &
                      (events.stream == stream)].sort_values("ts")
        steps = (held.type == "viewer_connected").map({True: 1, False: -1}).cumsum()
        ax.step(held.ts - run.start_s, steps, where="post", color="black",
                label="held by the harness")
        for source, frame in readings.items():
            mine = frame[frame.stream == stream]
            marker, label = CONSISTENCY_MARKERS[source]
            ax.plot(mine.ts - run.start_s, mine.value, marker, markersize=4, alpha=0.6,
                    linestyle="none", label=label)
        ax.set_ylabel(f"viewers\n{str(stream)[:8]}")
        _shade_phases(ax, run)
    _legend(axes[0, 0])
    axes[0, 0].set_title("Consistency: viewers held vs viewer counts the target reported")
    axes[-1, 0].set_xlabel("time since start (s)")
    return _save(fig, path)


def broadcasters(run: RunData, path: Path) -> Path:
    """Per stream: publish start, active, stop."""
    events = run.events
    streams = list(dict.fromkeys(events[events.type == "stream_created"].stream))
    fig, ax = plt.subplots(figsize=(13, 0.5 * max(len(streams), 1) + 1.5))
    marks = {"publish_started": ("o", AMBER), "stream_active_api": ("s", GREEN),
             "publish_failed": ("x", RED), "publish_stopped": ("|", GREY)}
    for row, stream in enumerate(streams):
        mine = events[events.stream == stream]
        start = mine[mine.type == "stream_active_api"].ts
        stop = mine[mine.type == "publish_stopped"].ts
        if len(start) and len(stop):
            ax.plot([start.iloc[0] - run.start_s, stop.iloc[0] - run.start_s], [row, row],
                    color=GREEN, linewidth=4, alpha=0.5)
        for kind, (marker, colour) in marks.items():
            at = mine[mine.type == kind].ts - run.start_s
            ax.plot(at, [row] * len(at), marker, color=colour, label=kind)
    ax.set_yticks(range(len(streams)), [s[:8] for s in streams], fontsize=8)
    ax.set_title("Broadcasters")
    ax.set_xlabel("time since start (s)")
    if streams:
        _legend(ax)
    return _save(fig, path)


def faults(run: RunData, path: Path) -> Path:
    """Around the fault windows: p95 and error ratio of the request traffic per second, open
    viewer sockets, and where each fault counted as recovered."""
    fig, (lat, err, count) = plt.subplots(3, 1, figsize=(13, 8), sharex=True)
    traffic = run.samples[run.samples.kind.isin(fault_figures.TRAFFIC_KINDS)]
    second = (traffic.ts - run.start_s).astype(int)
    ok = traffic[traffic.ok]
    p95 = ok.latency_ms.groupby(second[traffic.ok]).quantile(0.95)
    # Per-second figures as steps: a line between second 40's point and 41's would show
    # errors rising before the fault did.
    lat.step(p95.index, p95.to_numpy(), where="post", label="p95 (API, connects, round trips)")
    error = (~traffic.ok).groupby(second).mean()
    err.step(error.index, error.to_numpy(), where="post", color=RED, label="error ratio")
    series = connected_series(run)
    if not series.empty:
        count.step(series.t_s, series.connected, where="post", label="viewers connected")
    for figure in fault_figures.figures(run):
        for ax in (lat, err, count):
            if figure.outage_started_at is not None:
                outage_end = figure.outage_started_at + figure.outage_s \
                    if figure.outage_s is not None else run.end_s
                ax.axvspan(figure.outage_started_at - run.start_s, outage_end - run.start_s,
                           facecolor="none", edgecolor=RED, hatch="//", linewidth=0,
                           label=f"outage seen by users ({_secs(figure.outage_s)})")
            if figure.recovered_at is not None:
                ax.axvline(figure.recovered_at - run.start_s, color=GREEN, linestyle="--",
                           label=f"recovered ({figure.recovery_s:.1f} s after injection)")
    for ax in (lat, err, count):
        _shade_phases(ax, run)
        _legend(ax)
    lat.set_title("Faults: request latency, errors and viewers around each fault")
    lat.set_ylabel("p95 (ms)")
    err.set_ylabel("errors / requests")
    count.set_ylabel("viewers")
    count.set_xlabel("time since start (s)")
    return _save(fig, path)


def _shade_cycles(ax: Axes, run: RunData) -> None:
    events = run.events
    starts = events[events.type == "cycle_started"]
    ends = events[events.type == "cycle_disconnected"]
    gaps = sorted(gap.start for gap in run.manifest.gaps)
    for cycle, start in zip(starts.value, starts.ts, strict=True):
        end = ends[ends.value == cycle].ts
        # A cycle cut short by a kill ended with the run it belonged to, at the gap.
        cut = next((gap for gap in gaps if gap > start), run.end_s)
        stop = float(end.iloc[0]) if not end.empty else cut
        ax.axvspan((start - run.start_s) / 60, (stop - run.start_s) / 60, color=AMBER,
                   alpha=0.15, label="extra viewers connected")


def soak(run: RunData, path: Path) -> Path:
    """Memory per role with its fitted trend, the round trip's percentiles per bucket, the
    connect/disconnect cycles shaded."""
    fig, (mem, harness, lat) = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    found = {t.name: t for t in trend_figures.memory_trends(run)}
    memory = role_memory(run.resources, (*TARGET_ROLES, "harness"))
    for role, group in memory.groupby("role"):
        ax = harness if role == "harness" else mem
        minutes = (group.ts - run.start_s) / 60
        label = f"{role} ({MEASURE_LABELS[str(group.measure.iloc[0])]})"
        line = ax.plot(minutes, group.memory_bytes / 2**20, linewidth=0.8, label=label)[0]
        fitted = found.get(str(role))
        if fitted is not None:
            _trend_line(ax, run, fitted, line.get_color())
    width = trend_figures.bucket_s(run)
    _percentiles(lat, latency_series(run, WS_RTT, width), x_scale=60, prefix="round trip ")
    mem.set_title("Soak: target memory per role, with Theil-Sen trend (dashed) and its band")
    mem.set_ylabel("MiB (summed anon PSS, PSS or RSS)")
    harness.set_title("The load generator's own memory")
    harness.set_ylabel("MiB (anon PSS, else RSS)")
    lat.set_title(f"Round-trip latency per {width:.0f} s")
    lat.set_ylabel("ms")
    lat.set_xlabel("minutes since start")
    for ax in (mem, harness, lat):
        _shade_cycles(ax, run)
        _mark_gaps(ax, run)
        _legend(ax)
    return _save(fig, path)


def _mark_gaps(ax: Axes, run: RunData) -> None:
    """A resumed soak's gap (no data) drawn, its kill marked (minutes since the start)."""
    for gap in run.manifest.gaps:
        start, end = (gap.start - run.start_s) / 60, (gap.end - run.start_s) / 60
        ax.axvspan(start, end, color="black", alpha=0.15, hatch="//",
                   label="gap: killed, then resumed (not judged)")
        ax.axvline(start, color=RED, linewidth=1.2, label="killed")


def _trend_line(ax: Axes, run: RunData, fitted: Trend, colour: str) -> None:
    """The fitted slope from each span's baseline over the span, with the slope interval as a
    band (a resumed run's spans are drawn apart: the fit does not cross the gap)."""
    for span in fitted.spans:
        hours = np.linspace(0.0, span.duration_h, 50)
        minutes = (span.start_s - run.start_s) / 60 + hours * 60
        base = span.baseline / 2**20
        ax.plot(minutes, base + fitted.slope_per_h * hours / 2**20, "--", color=colour)
        if fitted.low_per_h is not None and fitted.high_per_h is not None:
            ax.fill_between(minutes, base + fitted.low_per_h * hours / 2**20,
                            base + fitted.high_per_h * hours / 2**20, color=colour, alpha=0.12)


def draw_all(run: RunData, verdict: Verdict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    extra = [faults(run, folder / "faults.png")] if run.faults() else []
    if (run.events.type == "cycle_started").any() or \
            run.manifest.scenario.get("soak"):
        extra.append(soak(run, folder / "soak.png"))
    return [scorecard(verdict, folder / "scorecard.png"),
            latency(run, verdict, folder / "latency.png"),
            throughput(run, folder / "throughput.png"),
            viewers(run, folder / "viewers.png"),
            resources(run, verdict, folder / "resources.png"),
            consistency(run, folder / "consistency.png"),
            broadcasters(run, folder / "broadcasters.png"), *extra]
