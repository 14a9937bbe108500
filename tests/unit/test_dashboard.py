"""deploy/grafana/nova-harness.json has the structure Grafana needs (no Grafana runs here: the
soak test runs every panel's query against a real Prometheus instead)."""

from __future__ import annotations

import copy

from tests import dashboard


def test_the_dashboard_has_what_grafana_requires() -> None:
    board = dashboard.load()
    assert dashboard.structure_problems(board) == []
    assert board["uid"] == "nova-harness"
    titles = [p["title"] for p in dashboard.panels(board) if p["type"] == "row"]
    # One row per area: viewers, API, broadcasters, HLS, target, soak, generator.
    assert len(titles) == 7
    assert len(dashboard.queries(board)) >= 20


def test_a_broken_dashboard_is_caught() -> None:
    board = copy.deepcopy(dashboard.load())
    del board["uid"]
    first, second = [p for p in dashboard.panels(board) if p["type"] != "row"][:2]
    second["id"] = first["id"]
    first["datasource"] = {"type": "prometheus", "uid": "grafanacloud-prom"}
    first["targets"][0]["expr"] = 'up{run_id="$run"}'
    assert dashboard.structure_problems(board) == [
        "no uid", f"panel id {first['id']} used twice",
        f"{first['title']}: datasource is not ${{datasource}}",
        f"{first['title']}: $run is not a variable"]


def test_queries_get_the_run_and_the_rate_interval() -> None:
    expr = 'rate(x{run_id="$run_id"}[$__rate_interval])'
    assert dashboard.expand(expr, "r-1") == 'rate(x{run_id="r-1"}[10s])'
