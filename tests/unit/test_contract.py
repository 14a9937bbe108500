"""The contract suite without a target: how it reads an OpenAPI document and a profile, which
values it tries outside a parameter's bounds, how it judges a 405 and a frame's fields, and
that no token reaches a reproduction command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import yaml

from harness.config.profile import load_profile
from harness.errors import CheckSkipped
from harness.suites.base import ContractOptions, Target
from harness.suites.contract_rest import (
    NOT_A_UUID,
    OVERFLOW,
    _allow_problem,
    _other_template_serves,
    _outside_bounds,
)
from harness.suites.contract_spec import curl, load_spec, redact, runnable_curl
from harness.suites.contract_ws import Frame, field_problems
from records.errors import InputError
from tests.unit.test_checks_runner import TARGET

ROOT = Path(__file__).resolve().parents[2]
NOVA_STYLE = {  # paths relative to a server path, as Nova's own document has them
    "servers": [{"url": "https://api.example.test/api/v1"}],
    "paths": {"/streams/{stream_id}": {"get": {"responses": {"200": {}, "4XX": {}}},
                                       "delete": {"responses": {"204": {}}}},
              "/streams/active": {"get": {"responses": {"200": {}}}}}}


def _target(tmp_path: Path, document: Mapping[str, object]) -> Target:
    spec = tmp_path / "openapi.yaml"
    spec.write_text(yaml.safe_dump(document))
    return Target(TARGET.api_base, TARGET.ws_base, TARGET.rtmp_url, TARGET.hls_base,
                  TARGET.metrics_url, TARGET.profile, TARGET.minter,
                  contract=ContractOptions(openapi=str(spec)))


def test_a_documents_server_path_is_where_its_operations_are_served(tmp_path: Path) -> None:
    spec = load_spec(_target(tmp_path, NOVA_STYLE))
    assert spec.base_path == "/api/v1"
    operation = spec.find("GET", "/api/v1/streams/{id}")  # the profile's parameter name
    assert operation is not None and operation.spec_path == "/streams/{stream_id}"
    assert operation.documents(200) and operation.documents(404) and not operation.documents(500)
    assert spec.find("POST", "/api/v1/streams/{id}") is None
    assert spec.paths()["/api/v1/streams/{stream_id}"] == {"GET", "DELETE"}


def test_a_literal_path_another_template_serves_is_not_an_undeclared_method(
        tmp_path: Path) -> None:
    spec = load_spec(_target(tmp_path, NOVA_STYLE))
    # DELETE /streams/active is DELETE /streams/{stream_id} with the id "active".
    assert _other_template_serves(spec, "DELETE", "/api/v1/streams/active")
    assert not _other_template_serves(spec, "POST", "/api/v1/streams/active")


def test_without_an_openapi_file_the_spec_checks_skip_and_a_broken_one_fails(
        tmp_path: Path) -> None:
    served = Target(TARGET.api_base, TARGET.ws_base, TARGET.rtmp_url, TARGET.hls_base,
                    TARGET.metrics_url, load_profile("nova-served").model_copy(
                        update={"openapi": None}), TARGET.minter)
    with pytest.raises(CheckSkipped, match="names no OpenAPI file"):
        load_spec(served)
    with pytest.raises(Exception, match="no `paths` mapping"):
        load_spec(_target(tmp_path, {"openapi": "3.1.0"}))


def test_values_outside_the_bounds() -> None:
    assert _outside_bounds({"type": "integer", "minimum": 0, "maximum": 100}) == \
        [OVERFLOW, "101", "-1"]
    assert _outside_bounds({"type": "string", "format": "uuid"}) == [NOT_A_UUID]
    assert _outside_bounds({"type": "string", "maxLength": 3}) == ["xxxx"]
    assert _outside_bounds({"type": "string"}) == []


@pytest.mark.parametrize(("status", "headers", "problem"), [
    (405, {"Allow": "GET, HEAD"}, None),
    (405, {}, "405 without an Allow header"),
    (405, {"Allow": "HEAD"}, "Allow: HEAD lacks GET"),
    (404, {}, "HTTP 404, expected 405"),
])
def test_a_405_must_name_the_documented_methods(status: int, headers: dict[str, str],
                                                problem: str | None) -> None:
    assert _allow_problem(httpx.Response(status, headers=headers), {"GET"}) == problem


def test_frames_are_held_to_the_profiles_fields_and_types() -> None:
    ended = Frame("stream_ended", {"stream_id": "s", "timestamp": "t", "duration_seconds": 74.7,
                                   "peak_viewers": True, "reason": "broadcaster_ended"})
    assert field_problems(TARGET, ended) == [  # in the profile's order
        "stream_ended.duration_seconds = 74.7 is not integer",
        "stream_ended.peak_viewers = True is not integer",
        "stream_ended lacks final_viewer_count"]
    assert field_problems(TARGET, Frame("quality_changed", {})) == []  # nothing documented


def test_no_token_reaches_a_reproduction() -> None:
    token = TARGET.minter.mint()
    assert token not in redact(f"curl -H 'Authorization: Bearer {token}' 'ws://h/x?token={token}'")
    assert runnable_curl("curl -X GET -H 'Authorization: [Filtered]' http://h/x") == \
        'curl -X GET -H "Authorization: Bearer $TOKEN" http://h/x'
    assert curl("GET", "http://h/a b", query={"offset": "9"}, token=True) == \
        "curl -X GET 'http://h/a b?offset=9' -H \"Authorization: Bearer $TOKEN\""


def test_the_profiles_openapi_file_resolves_beside_the_profile(tmp_path: Path) -> None:
    assert Path(str(load_profile("nova-doc").openapi)).samefile(ROOT / "docs/openapi.yaml")
    document = (ROOT / "harness/config/profiles/nova-doc.yaml").read_text().replace(
        "openapi: openapi/nova-doc.yaml", "openapi: mine.yaml").replace(
        "  fields:\n", "  fields:\n    dance: {x: string}\n")
    (tmp_path / "p.yaml").write_text(document)
    with pytest.raises(InputError) as failure:
        load_profile(str(tmp_path / "p.yaml"))
    assert failure.value.problems == [
        "profile p.yaml: ws.fields.dance: not a contract event (known: connection_established, "
        "viewer_count_changed, stream_started, stream_ended, quality_changed, ping, "
        "stream_info, error)",
        "profile p.yaml: openapi mine.yaml: no such file"]
    (tmp_path / "mine.yaml").write_text("openapi: 3.1.0\npaths: {}\n")
    (tmp_path / "p.yaml").write_text(document.replace("    dance: {x: string}\n", ""))
    assert load_profile(str(tmp_path / "p.yaml")).openapi == str(tmp_path / "mine.yaml")


def test_bad_contract_options_are_all_reported_before_anything_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "check", "--suite", "contract", "--examples",
         "0", "--openapi", str(tmp_path / "none.yaml"), "--run-dir", str(tmp_path / "stack")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--examples 0: must be 1..500" in result.stderr
    assert f"--openapi {tmp_path / 'none.yaml'}: no such file" in result.stderr
    assert not (tmp_path / "stack").exists()  # no stack was started



def test_a_walk_that_cannot_go_on_fails_every_step_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.suites import contract_ws

    runs: list[int] = []

    def broken_run(self: object) -> None:
        runs.append(1)
        raise ValueError("a frame that is not JSON")

    monkeypatch.setattr(contract_ws._Steps, "run", broken_run)
    walk = contract_ws.Walk(TARGET)
    outcomes = [walk.outcome(step) for step, _ in contract_ws.STEPS]
    assert runs == [1]  # one walk for all its lines, even when it broke
    assert {o.status for o in outcomes} == {"FAIL"}
    assert outcomes[0].reason == "the walk stopped: ValueError: a frame that is not JSON"


def test_an_unreachable_target_stops_the_walk_with_the_cause() -> None:
    from harness.suites.contract_ws import STEPS, Walk

    outcome = Walk(TARGET).outcome(STEPS[-1][0])  # TARGET: a closed port on loopback
    assert outcome.status == "FAIL" and "ConnectError" in outcome.reason, outcome.reason
