"""YAML files into pydantic models, with every problem reported at once by its YAML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from records.errors import InputError

M = TypeVar("M", bound=BaseModel)


def yaml_path(location: tuple[int | str, ...]) -> str:
    """`('load', 'hold_s')` → `load.hold_s`; list indexes as `[i]`."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


Location = tuple[int | str, ...]


def problems_of(error: ValidationError, source: str,
                lines: dict[Location, int] | None = None) -> list[str]:
    """One line per problem: where (YAML path, and the file's line when known), then what."""
    found = []
    for e in error.errors():
        location = tuple(e["loc"])
        found.append(f"{source}{_line_of(location, lines or {})}: {yaml_path(location)}: "
                     f"{e['msg']}")
    return found


def _line_of(location: Location, lines: dict[Location, int]) -> str:
    """`:12` for the deepest part of `location` the file has (an unknown key's parent)."""
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return f":{lines[location[:end]]}"
    return ""


def yaml_lines(path: Path) -> dict[Location, int]:
    """Each mapping key's and list item's YAML path → its 1-based line in `path` (empty when
    the file cannot be read or parsed: read_yaml reports that)."""
    try:
        root = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[Location, int] = {}

    def walk(node: yaml.Node, location: Location) -> None:
        lines[location] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*location, str(key.value))
                walk(value, child)
                lines[child] = key.start_mark.line + 1  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*location, index))
    if root is not None:
        walk(root, ())
    return lines


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


def build(model: type[M], document: dict[str, Any], source: str, hint: str,
          lines: dict[Location, int] | None = None) -> M:
    """`document` as `model`; InputError lists every problem, with its line when `lines`
    (yaml_lines of the file) is given."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InputError(problems_of(exc, source, lines), hint=hint) from None
