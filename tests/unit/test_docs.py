"""The documents stay true: every route the service serves is in docs/openapi.yaml, and every
NOVA_* setting the service reads is in docs/service.md."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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
