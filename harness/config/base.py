"""What every scenario model shares: strict, frozen models and durations written as `90`,
`"90s"`, `"2m"` or `"1h30m"`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                       r"(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration_s(value: Any) -> float:
    """`90`, `"90s"`, `"2m"`, `"1h30m"` → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '2m'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration (use 30, '30s', '2m', '1h30m')")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration_s)]


class Strict(BaseModel):
    """Unknown keys are errors (a typo is not silently ignored); values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
