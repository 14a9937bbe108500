"""YAML files into pydantic models, with every problem reported at once by its YAML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import InputError

M = TypeVar("M", bound=BaseModel)


def yaml_path(location: tuple[int | str, ...]) -> str:
    """`('load', 'hold_s')` → `load.hold_s`; list indexes as `[i]`."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems_of(error: ValidationError, source: str) -> list[str]:
    return [f"{source}: {yaml_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors()]


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError([f"{what} {path}: file not found"]) from None
    except yaml.YAMLError as exc:
        raise InputError([f"{what} {path}: not valid YAML: {exc}".replace("\n", " ")]) from None
    if not isinstance(document, dict):
        raise InputError([f"{what} {path}: must be a YAML mapping"])
    return document


def build(model: type[M], document: dict[str, Any], source: str, hint: str) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InputError(problems_of(exc, source), hint=hint) from None
