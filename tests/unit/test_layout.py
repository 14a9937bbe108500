"""The package rules of the layout (docs/architecture.md), read from every import statement,
function-level ones included, so they cannot erode unnoticed:

- `records/` (the results format) imports nothing from `harness/`, `analysis/` or `stack/`;
- `analysis/` imports `records/` and nothing from `harness/` or `stack/`;
- `harness/` imports `analysis/` only in its CLI (`harness/cli/`);
- `stack/` (the reference target) imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("records", "analysis", "harness", "stack")
FORBIDDEN = {"records": {"harness", "analysis", "stack"},
             "analysis": {"harness", "stack"},
             "harness": {"analysis"},
             "stack": {"harness", "analysis", "records"}}
# Where a forbidden import is the design: only the CLI runs the analysis stage.
ALLOWED = {("harness", "analysis"): {"harness/cli/commands.py"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages of this project that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_layout(package: str) -> None:
    broken = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for target in imported_packages(path) & FORBIDDEN[package]:
            if relative not in ALLOWED.get((package, target), set()):
                broken.append(f"{relative} imports {target}")
    assert not broken, broken


def test_the_rule_reader_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from harness.run.engine import Run\n"
                      "    import analysis.load\n")
    assert imported_packages(module) == {"harness", "analysis"}
