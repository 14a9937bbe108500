"""A role's memory over time, as every memory judgement reads it (soak trends, cycles, the
checklist's memory share, the charts). Where the rows carry `pss_bytes` (the local stack's
processes, every few seconds) it is the summed PSS: summed RSS counts a page shared by a
role's processes once per process, so PostgreSQL's shared buffers appear once per backend and
a backend warming its share of them looks like growth. Elsewhere (PromQL rows, the harness's
self-watch, folders from before PSS was recorded) it is the summed RSS."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

# PSS comes every few seconds (harness/monitor.py PSS_INTERVAL_S); a per-second sum across
# roles carries the last value this long.
PSS_CARRY_S = 10


def role_memory(resources: pd.DataFrame, roles: Sequence[str]) -> pd.DataFrame:
    """`ts` (whole seconds), `role`, `memory_bytes` (roots summed), `measure` (pss | rss)."""
    frame = resources[resources.role.isin(roles)]
    parts = []
    for role, group in frame.groupby("role", observed=True):
        has_pss = "pss_bytes" in group and bool(group.pss_bytes.notna().any())
        rows = group[group.pss_bytes.notna()] if has_pss else group
        column = "pss_bytes" if has_pss else "rss_bytes"
        summed = rows.groupby(rows.ts.round(0))[column].sum().astype(float)
        parts.append(pd.DataFrame({"ts": summed.index.to_numpy(dtype=float), "role": str(role),
                                   "memory_bytes": summed.to_numpy(),
                                   "measure": "pss" if has_pss else "rss"}))
    if not parts:
        return pd.DataFrame({"ts": pd.Series(dtype=float), "role": pd.Series(dtype=str),
                             "memory_bytes": pd.Series(dtype=float),
                             "measure": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def memory_by_second(resources: pd.DataFrame, roles: Sequence[str]) -> pd.DataFrame:
    """One row per second, one column per role: each role's memory every second, a PSS
    value carried to the seconds after it (up to PSS_CARRY_S) so that roles can be summed
    per second."""
    found = role_memory(resources, roles)
    if found.empty:
        return pd.DataFrame()
    wide = found.pivot_table(index="ts", columns="role", values="memory_bytes", aggfunc="sum")
    seconds = pd.RangeIndex(int(wide.index.min()), int(wide.index.max()) + 1)
    return wide.reindex(seconds.astype(float)).ffill(limit=PSS_CARRY_S)


def measure_of(resources: pd.DataFrame, role: str) -> str:
    """`pss` when the role's memory is its summed PSS, else `rss`."""
    rows = resources[resources.role == role]
    return "pss" if "pss_bytes" in rows and bool(rows.pss_bytes.notna().any()) else "rss"
