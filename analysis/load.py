"""Results folder → DataFrames. Reads only the folder (it may come from another machine),
tolerates a killed run (parts up to the kill, stray temp files) and skips parts that a
compacted file already covers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.schema import TABLES

_COMPACT = re.compile(r"^compact-(\d+)-(\d+)\.parquet$")
_PART = re.compile(r"^part-(\d+)\.parquet$")


def table_files(folder: Path) -> list[Path]:
    """The readable files of one table, in write order, without double counting."""
    if not folder.is_dir():
        return []
    covered: list[tuple[int, int]] = []
    compacted, parts = [], []
    for path in folder.iterdir():
        if match := _COMPACT.match(path.name):
            covered.append((int(match[1]), int(match[2])))
            compacted.append((int(match[1]), path))
        elif match := _PART.match(path.name):
            parts.append((int(match[1]), path))
    kept = [(n, p) for n, p in parts if not any(lo <= n <= hi for lo, hi in covered)]
    return [p for _, p in sorted(compacted + kept)]


def read_table(results_dir: Path, name: str) -> pd.DataFrame:
    """One table as a DataFrame (empty with the right columns when nothing was written)."""
    files = table_files(results_dir / name)
    schema = TABLES[name]
    table = pa.concat_tables([pq.read_table(f, schema=schema) for f in files]) if files \
        else schema.empty_table()
    frame: pd.DataFrame = table.to_pandas()
    return frame


def read_manifest(results_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((results_dir / "manifest.json").read_text())
    return document
