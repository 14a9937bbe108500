"""The opt-in memory trace: its setting is validated like any option, and a trace names the
line whose allocations grew."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runtime.memtrace import ENV_VAR, MemoryTrace, interval_from_env
from records.errors import InputError


def test_the_setting_is_off_or_seconds() -> None:
    assert interval_from_env({}) is None
    assert interval_from_env({ENV_VAR: "60"}) == 60.0
    for bad in ("soon", "1", "-5"):
        with pytest.raises(InputError) as caught:
            interval_from_env({ENV_VAR: bad})
        assert ENV_VAR in caught.value.problems[0] and caught.value.hint


def test_a_trace_names_the_growing_line(tmp_path: Path) -> None:
    log = tmp_path / "memory-trace.log"
    trace = MemoryTrace(log, every_s=3600)
    trace.start()
    kept = [bytearray(1000) for _ in range(2000)]  # ~2 MB that stays referenced
    trace.stop()
    text = log.read_text()
    assert text.startswith("tracing every 3600 s")
    growth_lines = [line for line in text.splitlines() if "test_memtrace.py" in line]
    assert growth_lines and "+" in growth_lines[0], text
    assert len(kept) == 2000
