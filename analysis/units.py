"""Figures as a sign-off meeting reads them: every value in the unit its checklist line uses
(ratios and shares as %, bytes as MiB or GiB, ms, s) with sensible precision and no exponent
notation. Used by verdict reasons, summary.md, report.html and the charts."""

from __future__ import annotations

import math

MIB = 2**20
GIB = 2**30
# Threshold metrics and aggregations whose values are fractions of 1, shown as %.
_RATIO_AGGREGATIONS = ("success_ratio", "error_ratio")
_RATIO_WORDS = ("_ratio", "_share")


def display_unit(unit: str, measure: str) -> str:
    """The unit a value of `measure` (a threshold's metric or aggregation) is shown in:
    `ratio` (a fraction shown as %) when the threshold gives none and the measure is a ratio
    or a share, else the threshold's own unit."""
    if unit:
        return unit
    if measure in _RATIO_AGGREGATIONS or any(word in measure for word in _RATIO_WORDS):
        return "ratio"
    return ""


def number(value: float, significant: int = 3) -> str:
    """`value` rounded to `significant` digits, never in exponent notation."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else ("never" if value > 0 else "-inf")
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, significant - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def show(value: float | None, unit: str) -> str:
    """One figure with its unit: 0.099 ratio → "9.9 %", 7.478e7 bytes → "71.3 MiB",
    20.61 ms → "20.6 ms", inf s → "never"."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never" if value > 0 else "-inf"
    if unit == "ratio":
        return f"{number(value * 100, 4 if abs(value) >= 0.9 else 3)} %"
    if unit == "bytes":
        if abs(value) >= 10 * GIB:
            return f"{number(value / GIB)} GiB"
        return f"{number(value / MIB)} MiB"
    if unit == "%":
        return f"{number(value)} %"
    return f"{number(value)} {unit}".rstrip()
