"""§14 "ClickHouse records match real events": the lifecycle events the harness observed
against the events ClickHouse held when the harness read it after the load (docs/thresholds.md,
"Analytics").

Observed, per stream: created (the harness's POST), active (the API reporting it active after
a publish), ended (a viewer told `stream_ended`, or the stream read back ended), viewer joins
(sockets opened) and leaves (sockets closed). Stored: one per event id. Per stream and type the
counts must be equal; missing events are named by the harness's own record (time, viewer),
extra ones by their event id, and an id stored in more than one row is a duplicate."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import Estimate, percentile

LAG_BOUND_S = 5.0  # an event stored later than this after it happened is late
ANALYTICS_METRICS = {
    "clickhouse_events_mismatched": "observed lifecycle events missing from ClickHouse, plus "
                                    "stored events the harness never saw, plus ids stored twice",
    "clickhouse_events_missing": "observed lifecycle events with no ClickHouse record",
    "events_ingest_lag_p95_s": "p95 of event time → stored in ClickHouse, seconds",
    "analytics_lag_recovery_s": "slowest time from an analytics fault's start until events are "
                                f"stored within {LAG_BOUND_S:g} s again (inf if never)",
}
EXAMPLES = 3
_SOURCES = {"viewer_connected": "viewer_joined", "viewer_closed": "viewer_left",
            "stream_created": "stream_created", "stream_active_api": "stream_active"}


@dataclass(frozen=True)
class Comparison:
    streams: int
    observed: int
    stored: int
    missing: int
    extra: int
    duplicated: int
    examples: tuple[str, ...]

    @property
    def mismatched(self) -> int:
        return self.missing + self.extra + self.duplicated

    def summary(self) -> str:
        counts = (f"compared {self.observed} observed with {self.stored} stored events of "
                  f"{self.streams} streams: {self.missing} missing, {self.extra} extra, "
                  f"{self.duplicated} duplicated")
        return counts + (f"; e.g. {'; '.join(self.examples)}" if self.examples else "")


def snapshot(run: RunData) -> pd.Series | None:
    """The `analytics_snapshot` event (None: ClickHouse was not read after the load)."""
    rows = run.events[run.events.type == "analytics_snapshot"]
    return None if rows.empty else rows.iloc[-1]


def observed(run: RunData) -> pd.DataFrame:
    """ts, stream, type, user of every lifecycle event the harness saw, of its own streams."""
    events = run.events
    streams = set(events[events.type == "stream_created"].stream.dropna())
    seen = events[events.type.isin(list(_SOURCES)) & events.stream.isin(streams)]
    frame = pd.DataFrame({"ts": seen.ts, "stream": seen.stream.astype(str),
                          "type": seen.type.astype(str).map(_SOURCES), "user": seen.user})
    ended = events[events.stream.isin(streams) & (
        (events.type == "stream_ended_seen") | _read_back_ended(events))]
    first_end = ended.groupby("stream", observed=True).ts.min()
    ends = pd.DataFrame({"ts": first_end.to_numpy(), "stream": first_end.index.astype(str),
                         "type": "stream_ended", "user": None})
    return pd.concat([frame, ends], ignore_index=True).sort_values("ts")


def _read_back_ended(events: pd.DataFrame) -> pd.Series:
    def ended(detail: Any) -> bool:
        try:
            return bool(json.loads(detail).get("status") == "ended")
        except (TypeError, ValueError, AttributeError):
            return False
    return (events.type == "stream_readback") & events.detail.map(ended)


def stored(run: RunData) -> pd.DataFrame:
    """ts (event time), stream, type (the harness's word), viewer, lag_s, id, rows."""
    shot = snapshot(run)
    rows = run.events[run.events.type == "clickhouse_event"]
    names = {}
    if shot is not None:
        names = {v: k for k, v in json.loads(str(shot.detail)).get("types", {}).items()}
    details = [json.loads(str(d)) for d in rows.detail]
    return pd.DataFrame({
        "ts": rows.ts.to_numpy(), "stream": rows.stream.astype(str).to_numpy(),
        "type": [names.get(d["type"], d["type"]) for d in details],
        "viewer": rows.user.to_numpy(), "lag_s": rows.value.to_numpy(dtype=np.float64),
        "id": [d["id"] for d in details], "rows": [int(d.get("rows", 1)) for d in details]})


def compare(run: RunData) -> Comparison | None:
    """Memoised per run; None when ClickHouse was not read."""
    result: Comparison | None = run.memo("analytics.compare", lambda: _compare(run))
    return result


def _compare(run: RunData) -> Comparison | None:
    shot = snapshot(run)
    if shot is None:
        return None
    # Only the types the profile maps are compared; a target's other event types are not.
    mapped = set(json.loads(str(shot.detail)).get("types", {}))
    seen, kept = observed(run), stored(run)
    seen, kept = seen[seen.type.isin(mapped)], kept[kept.type.isin(mapped)]
    missing = extra = 0
    examples: list[str] = []
    for (stream, kind), mine in seen.groupby(["stream", "type"]):
        theirs = kept[(kept.stream == stream) & (kept.type == kind)]
        lost, added = _unmatched(mine.ts.to_numpy(), theirs.ts.to_numpy())
        missing += len(lost)
        extra += len(added)
        examples += [f"{kind} of stream {str(stream)[:8]} at {_clock(mine.ts.iloc[i])}"
                     f"{_who(mine.user.iloc[i])} observed, not stored" for i in lost]
        examples += [f"stored {kind} {theirs.id.iloc[i]} of stream {str(stream)[:8]} at "
                     f"{_clock(theirs.ts.iloc[i])} never observed" for i in added]
    pairs = set(zip(seen.stream, seen.type, strict=True))
    unpaired = kept[[(s, t) not in pairs for s, t in zip(kept.stream, kept.type, strict=True)]]
    extra += len(unpaired)
    examples += [f"stored {t} {i} of stream {str(s)[:8]} never observed"
                 for t, i, s in zip(unpaired.type, unpaired.id, unpaired.stream, strict=True)]
    doubled = kept[kept.rows > 1]
    examples += [f"{i} stored {n} times" for i, n in zip(doubled.id, doubled.rows, strict=True)]
    return Comparison(seen.stream.nunique(), len(seen), len(kept), missing, extra,
                      int((doubled.rows - 1).sum()), tuple(_spread(examples)))


def _unmatched(mine: np.ndarray, theirs: np.ndarray) -> tuple[list[int], list[int]]:
    """Pair observed and stored times in order (both sorted); the surplus of either side,
    by position, is what the other lacks. Times are only used to name examples."""
    order_mine, order_theirs = np.argsort(mine), np.argsort(theirs)
    if len(mine) >= len(theirs):
        return _surplus(mine[order_mine], theirs[order_theirs], order_mine), []
    return [], _surplus(theirs[order_theirs], mine[order_mine], order_theirs)


def _surplus(more: np.ndarray, fewer: np.ndarray, order: np.ndarray) -> list[int]:
    """Indices (into the unsorted side) of `more`'s entries left after pairing each of
    `fewer` with its nearest unpaired entry."""
    free = list(range(len(more)))
    for value in fewer:
        nearest = min(free, key=lambda j: abs(more[j] - value))
        free.remove(nearest)
    return [int(order[j]) for j in free]


def _spread(examples: list[str]) -> list[str]:
    return examples[:EXAMPLES] + ([f"… {len(examples) - EXAMPLES} more"]
                                  if len(examples) > EXAMPLES else [])


def _clock(ts: float) -> str:
    return pd.Timestamp(ts, unit="s", tz="UTC").strftime("%H:%M:%S.%f")[:-3]


def _who(user: Any) -> str:
    return f" ({user})" if isinstance(user, str) and user else ""


def derived(run: RunData, name: str) -> Estimate:
    """One of ANALYTICS_METRICS."""
    if name == "events_ingest_lag_p95_s":
        lags = stored(run).lag_s.to_numpy(dtype=np.float64)
        return percentile(lags[~np.isnan(lags)], 0.95)
    if name == "analytics_lag_recovery_s":
        return _lag_recovery(run)
    found = compare(run)
    failed = run.events[run.events.type == "analytics_snapshot_failed"]
    if found is None and not failed.empty:
        return Estimate(math.nan, None, None, 0, unjudgeable="ClickHouse could not be read "
                        f"after the load ({failed.detail.iloc[-1]})")
    if found is None:  # no analytics source: below_min says what that means
        return Estimate(math.nan, None, None, 0)
    value = found.mismatched if name == "clickhouse_events_mismatched" else found.missing
    return Estimate(float(value), None, None, found.observed, detail=found.summary())


@dataclass(frozen=True)
class FaultLag:
    """One analytics fault, judged on the events stored around it."""

    id: str
    title: str
    # From the fault's start to the first event after its last late one (0: none was late;
    # inf: no event after it was stored in time).
    recovery_s: float
    events: int         # stored events of its window
    late: int           # of them first stored more than LAG_BOUND_S after they happened


def fault_lags(run: RunData) -> list[FaultLag]:
    """Per analytics fault (broker, loader, ClickHouse): from its start until the first event
    after which every event up to the next fault (or the end) was first stored within
    LAG_BOUND_S."""
    kept = stored(run).sort_values("ts")
    faults = sorted((f for f in run.faults()
                     if _breaks_analytics(f.experiment + " " + f.title)),
                    key=lambda f: float(f.start or 0))
    ts, lag = kept.ts.to_numpy(), kept.lag_s.to_numpy(dtype=np.float64)
    found = []
    for index, fault in enumerate(faults):
        start = float(fault.start or 0)
        # An event this close to the next fault's start may be delayed by that fault.
        until = float(faults[index + 1].start or math.inf) - LAG_BOUND_S \
            if index + 1 < len(faults) else math.inf
        inside = (ts >= start) & (ts < until)
        window_lag, window_ts = lag[inside], ts[inside]
        late = window_lag > LAG_BOUND_S
        after_last_late = np.flatnonzero(late)[-1] + 1 if late.any() else 0
        if not late.any():
            recovery_s = 0.0
        elif after_last_late < len(window_ts):
            recovery_s = float(window_ts[after_last_late] - start)
        else:
            recovery_s = math.inf
        found.append(FaultLag(fault.id, fault.title, recovery_s, int(inside.sum()),
                              int(late.sum())))
    return found


def _lag_recovery(run: RunData) -> Estimate:
    found = fault_lags(run)
    if not found or stored(run).empty:
        return Estimate(math.nan, None, None, 0)
    return Estimate(max(f.recovery_s for f in found), None, None, len(found))


def fault_notes(run: RunData) -> list[str]:
    """One line per analytics fault for the report."""
    lines = []
    for fault in fault_lags(run):
        if fault.late == 0:
            back = f"every event stored within {LAG_BOUND_S:g} s"
        elif math.isinf(fault.recovery_s):
            back = "events never stored in time again"
        else:
            back = (f"events stored within {LAG_BOUND_S:g} s again {fault.recovery_s:.1f} s "
                    "after it began")
        lines.append(f"analytics fault {fault.id} ({fault.title}): {back}; {fault.late} of "
                     f"the {fault.events} events of its window stored late")
    found = compare(run)
    if lines and found is not None:
        lines.append(f"analytics after the faults: {found.summary()}")
    return lines


def _breaks_analytics(title: str) -> bool:
    return any(word in title.lower() for word in ("broker", "loader", "clickhouse", "kafka"))


def snapshot_wait_s(run: RunData) -> float | None:
    shot = snapshot(run)
    return None if shot is None or shot.value is None else float(shot.value)
