"""The harness's own memory over a soak, and what a soak costs on disk.

    .venv/bin/nova-harness soak scenarios/soak-4h.yaml --duration 32m --results /tmp/soak
    .venv/bin/python bench/soak_memory.py /tmp/soak/<run-id> [...]

Per folder: the generator's memory (anonymous PSS, else RSS) at the start of the settled span
and at the end, its Theil-Sen slope in MB/h with the 95 % interval (the same statistic as the
soak verdict `harness-memory-flat`), the target's roles likewise, rows and events per second,
and the results' size per hour on disk. Where the folder has them (runs since 2026-11-29), the
generator's live Python blocks and Arrow's allocated bytes over the same span: flat while its
memory grew means the allocators kept freed memory; growing means live objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import trends
from analysis.load import RunData, load_run
from analysis.memory import role_memory
from analysis.trends import bucket_s, memory_trends, settled


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def heap_figures(run: RunData, settled_s: float) -> None:
    """The generator's live Python blocks and Arrow bytes from `settled_s` on, with slopes."""
    rows = run.metrics[(run.metrics.source == "harness") & (run.metrics.ts >= settled_s)]
    for series, unit, scale in (("python_allocated_blocks", "k blocks", 1e3),
                                ("arrow_allocated_bytes", "MB", 1e6)):
        values = rows[rows.series == series]
        fitted = trends.trend(series, values.ts, values.value, bucket_s(run))
        if fitted is None:
            continue
        first, last = values.value.iloc[0] / scale, values.value.iloc[-1] / scale
        print(f"  {series}: {first:.1f} → {last:.1f} {unit}, slope "
              f"{fitted.slope_per_h / scale:.2f} {unit}/h, Mann-Kendall p {fitted.p_value:.2g}")


def report(folder: Path) -> None:
    run = load_run(folder)
    hours = (run.end_s - run.start_s) / 3600
    harness = settled(role_memory(run.resources, ("harness",)))
    print(f"{folder.name}: {hours * 60:.1f} min, {len(run.samples) / (hours * 3600):.0f} "
          f"samples/s, {len(run.events) / (hours * 3600):.0f} events/s")
    if not harness.empty:
        print(f"  harness {harness.measure.iloc[0]} {harness.memory_bytes.iloc[0] / 1e6:.1f} MB "
              f"→ {harness.memory_bytes.iloc[-1] / 1e6:.1f} MB over the settled span")
    for trend in memory_trends(run):
        low = "?" if trend.low_per_h is None else f"{trend.low_per_h / 1e6:.2f}"
        high = "?" if trend.high_per_h is None else f"{trend.high_per_h / 1e6:.2f}"
        print(f"  {trend.name:<9} slope {trend.slope_per_h / 1e6:7.2f} MB/h [{low}, {high}], "
              f"Mann-Kendall p {trend.p_value:.2g}, growth share {trend.growth_share:.1%}")
    if not harness.empty:
        heap_figures(run, float(harness.ts.iloc[0]))
    size = folder_bytes(folder)
    print(f"  results {size / 1e6:.1f} MB on disk, {size / 1e6 / hours:.0f} MB per hour; "
          f"{sum(1 for _ in folder.rglob('*.parquet'))} Parquet files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders of soaks")
    for folder in parser.parse_args().folders:
        report(folder)


if __name__ == "__main__":
    main()
