"""Reading deploy/grafana/nova-harness.json the way Grafana would: its structure, and every
panel's PromQL with the dashboard's variables filled in (tests/unit/test_dashboard.py checks
the structure; the soak test runs every query against a real Prometheus)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy/grafana/nova-harness.json"
DATASOURCE_REF = "${datasource}"
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows themselves too."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query target."""
    return [(panel["title"], target["expr"]) for panel in panels(dashboard)
            if panel.get("type") != "row" for target in panel.get("targets", [])]


def expand(expr: str, run_id: str, rate_interval: str = "10s") -> str:
    """The query as Grafana sends it for one run."""
    return expr.replace("$__rate_interval", rate_interval).replace("$run_id", run_id)


def structure_problems(dashboard: dict[str, Any]) -> list[str]:
    """What Grafana would refuse or show broken: no uid, an old schema, duplicate panel ids,
    a panel without a position or a query, a datasource that is not the variable, a variable
    used but never defined."""
    problems = [] if dashboard.get("uid") else ["no uid"]
    if int(dashboard.get("schemaVersion", 0)) < 36:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')} < 36")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append("no Prometheus datasource variable named datasource")
    ids = [int(panel.get("id", 0)) for panel in panels(dashboard)]
    problems += [f"panel id {i} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for panel in panels(dashboard):
        title = panel.get("title", "?")
        if "gridPos" not in panel:
            problems.append(f"{title}: no gridPos")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets or not all(t.get("expr") for t in targets):
            problems.append(f"{title}: a panel without a query")
        for item in [panel, *targets]:
            if item.get("datasource", {}).get("uid") != DATASOURCE_REF:
                problems.append(f"{title}: datasource is not {DATASOURCE_REF}")
        for target in targets:
            unknown = set(VARIABLE.findall(target.get("expr", ""))) - set(variables) - \
                BUILTIN_VARIABLES
            problems += [f"{title}: ${name} is not a variable" for name in sorted(unknown)]
    return problems
