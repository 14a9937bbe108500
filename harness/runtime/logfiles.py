"""Log files a long run appends to (ffmpeg's, the interim analyses'): bounded by rotation."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

LOG_MAX_BYTES = 1_000_000


def rotated(log: Path) -> Path:
    """`log`, after moving it to `log.1` (replacing an older one) once it passed
    LOG_MAX_BYTES: an hours-long run keeps at most two."""
    with contextlib.suppress(FileNotFoundError):
        if log.stat().st_size > LOG_MAX_BYTES:
            os.replace(log, log.with_name(log.name + ".1"))
    return log
