"""A role's memory over time, as every memory judgement reads it (soak trends, cycles, the
checklist's memory share, the charts). The best measure the rows carry wins; growth (trends,
cycles, the soak chart) prefers the first, a role's share of the host's memory the second:

- `anon_pss_bytes` (results format 3, the local stack's processes every few seconds, and the
  harness's self-watch since 2026-11-29): the anonymous pages' PSS summed — what the processes
  allocated themselves, each page once;
- `pss_bytes` (format 2): all of PSS, which also holds shared memory, and counts it only while
  some process maps it — PostgreSQL's shared buffers come and go with its backends;
- `rss_bytes` elsewhere (PromQL rows, older harness rows, format 1 folders): summed RSS
  counts a page shared by a role's processes once per process, so PostgreSQL's shared buffers
  appear once per backend and a backend warming its share of them looks like growth."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

Measure = tuple[tuple[str, str], ...]
# Measures in order of preference, as (column, name in charts and reports); RSS is always there.
FOOTPRINT: Measure = (("pss_bytes", "pss"), ("rss_bytes", "rss"))
GROWTH: Measure = (("anon_pss_bytes", "anon"), *FOOTPRINT)
# PSS comes every few seconds (harness/monitor/processes.py PSS_INTERVAL_S); a per-second sum across
# roles carries the last value this long.
PSS_CARRY_S = 10


def _measure(rows: pd.DataFrame, measures: Measure) -> tuple[str, str]:
    """(column, name) of the first of `measures` present in `rows`."""
    for column, name in measures[:-1]:
        if column in rows and bool(rows[column].notna().any()):
            return column, name
    return measures[-1]


def role_memory(resources: pd.DataFrame, roles: Sequence[str],
                measures: Measure = GROWTH) -> pd.DataFrame:
    """`ts` (whole seconds), `role`, `memory_bytes` (roots summed), `measure` (anon | pss |
    rss)."""
    frame = resources[resources.role.isin(roles)]
    parts = []
    for role, group in frame.groupby("role", observed=True):
        column, name = _measure(group, measures)
        rows = group[group[column].notna()]
        summed = rows.groupby(rows.ts.round(0))[column].sum().astype(float)
        parts.append(pd.DataFrame({"ts": summed.index.to_numpy(dtype=float), "role": str(role),
                                   "memory_bytes": summed.to_numpy(), "measure": name}))
    if not parts:
        return pd.DataFrame({"ts": pd.Series(dtype=float), "role": pd.Series(dtype=str),
                             "memory_bytes": pd.Series(dtype=float),
                             "measure": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def memory_by_second(resources: pd.DataFrame, roles: Sequence[str]) -> pd.DataFrame:
    """One row per second, one column per role: each role's memory footprint (PSS, else RSS)
    every second, a PSS value carried to the seconds after it (up to PSS_CARRY_S) so that
    roles can be summed per second."""
    found = role_memory(resources, roles, FOOTPRINT)
    if found.empty:
        return pd.DataFrame()
    wide = found.pivot_table(index="ts", columns="role", values="memory_bytes", aggfunc="sum")
    seconds = pd.RangeIndex(int(wide.index.min()), int(wide.index.max()) + 1)
    return wide.reindex(seconds.astype(float)).ffill(limit=PSS_CARRY_S)

