"""The populations a threshold's bad events can only come from. "No viewer dropped" is evidence
only when viewers were held; "no HLS stall" only when HLS viewers played. A threshold names its
population (`population:` in the threshold file); when that population is empty the line is
NOT APPLICABLE, or INCONCLUSIVE when the scenario planned members of it (docs/thresholds.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analysis import fault_verdicts as faults
from analysis.load import RunData
from analysis.metrics import viewers_established
from records.schema import HLS_SEGMENT


@dataclass(frozen=True)
class Population:
    name: str
    size: int
    planned: bool       # the scenario asked for members of this population
    description: str    # what a member is, for reasons: "viewers held"


def _scenario(run: RunData) -> dict[str, object]:
    return dict(run.manifest.scenario)


def _hls_planned(run: RunData) -> bool:
    viewers = _scenario(run).get("viewers") or {}
    share = float(viewers.get("hls_share") or 0) if isinstance(viewers, dict) else 0.0
    return share > 0 and run.manifest.planned.viewers > 0


def _hls_viewers(run: RunData) -> int:
    samples = run.samples
    played = samples[(samples.kind == HLS_SEGMENT) & samples.ok]
    return int(played.user.nunique())


def _interrupted(run: RunData) -> int:
    events = run.events
    return int(events[events.type == "publish_interrupted"].stream.nunique())


def _dropped(run: RunData) -> int:
    return sum(f.viewers_dropped for f in faults.figures(run))


def _told_after_faults(run: RunData) -> int:
    return sum(f.count_observations_after for f in faults.figures(run))


# name → (what a member is, size, planned)
_POPULATIONS: dict[str, tuple[str, Callable[[RunData], int], Callable[[RunData], bool]]] = {
    "viewers": ("viewers held", viewers_established,
                lambda run: run.manifest.planned.viewers > 0),
    "hls_viewers": ("HLS viewers that played a segment", _hls_viewers, _hls_planned),
    "faults": ("fault windows", lambda run: len(run.faults()),
               lambda run: bool(_scenario(run).get("chaos"))),
    "dropped_viewers": ("viewers dropped by a fault", _dropped, lambda run: False),
    "interrupted_broadcasters": ("broadcasters whose RTMP connection was cut", _interrupted,
                                 lambda run: False),
    "viewers_told_counts_after_faults": ("viewers told a count during or after a fault",
                                         _told_after_faults, lambda run: False),
}
POPULATIONS = {name: entry[0] for name, entry in _POPULATIONS.items()}


def population(run: RunData, name: str) -> Population:
    """How many members of population `name` the run had, and whether it planned any."""
    description, size, planned = _POPULATIONS[name]
    return Population(name, int(size(run)), bool(planned(run)), description)
