"""The documents stay true: every route the service serves is in docs/openapi.yaml, and every
NOVA_* setting the service reads is in docs/service.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel

from harness.config.scenario import Scenario
from records.documents import Manifest
from records.reference import current_block, reference
from stack.service.app import create_app
from stack.service.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_lists_every_route() -> None:
    app = create_app(Settings(jwt_secret="x" * 32))
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    spec = yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())
    documented = {(method.upper(), path) for path, ops in spec["paths"].items()
                  for method in ops if method != "parameters"}
    assert served == documented


def test_service_doc_lists_every_setting() -> None:
    source = (ROOT / "stack/service/config.py").read_text()
    read = set(re.findall(r'"(NOVA_[A-Z_]+)"', source))
    documented = set(re.findall(r"`(NOVA_[A-Z_]+)`", (ROOT / "docs/service.md").read_text()))
    assert read <= documented, read - documented


def _option_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = [a for a in (field.annotation, *get_args(field.annotation))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        for arg in get_args(field.annotation):  # list[Model]
            nested += [a for a in get_args(arg) if isinstance(a, type) and
                       issubclass(a, BaseModel)]
        paths += _option_paths(nested[0], f"{path}.") if nested else [path]
    return paths


def test_scenario_doc_names_every_option() -> None:
    """Every scenario option (leaf of the pydantic model) is named in docs/scenarios.md or,
    for monitoring's nested settings, docs/monitoring.md."""
    text = " ".join(re.findall(r"`([^`]+)`", (ROOT / "docs/scenarios.md").read_text() +
                               (ROOT / "docs/monitoring.md").read_text()))
    missing = [path for path in _option_paths(Scenario)
               if not re.search(rf"\b{re.escape(path.rsplit('.', 1)[-1])}\b", text)]
    assert not missing


def test_checks_doc_lists_every_check() -> None:
    from harness.suites.base import REGISTRY
    from harness.suites.runner import BUILT_SUITES

    text = (ROOT / "docs/checks.md").read_text()
    missing = [f"{s}/{c.id}" for s in BUILT_SUITES for c in REGISTRY[s]
               if f"| {s} | `{c.id}` | {c.checklist} |" not in text]
    assert not missing


def test_results_format_doc_holds_the_generated_field_reference() -> None:
    text = (ROOT / "docs/results-format.md").read_text()
    assert current_block(text) == reference(), \
        "docs/results-format.md is stale: run `python -m records.reference --write`"


def test_the_field_reference_changes_with_the_models() -> None:
    # The check above could only fail if the generated block followed the models.
    assert "`saturated_seconds` | `float`" in reference()
    assert "- table **resources**: `ts` double" in reference()
    assert all(f"`{name}`" in reference() for name in Manifest.model_fields)
