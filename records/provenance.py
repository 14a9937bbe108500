"""What produced a results folder or a report: the harness's version, the git commit it
runs from, and the hashes of the files it was given."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

HARNESS_VERSION = "0.1.0"


@functools.cache
def source_commit() -> str | None:
    """The git commit the harness runs from (`+dirty` with uncommitted changes), or None
    when it is not a git checkout: reports say what produced them."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def file_sha256(path: Path | str | None) -> str | None:
    """The file's SHA-256 (hex), None when there is no such file: a report names exactly
    which scenario and threshold file produced it."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
