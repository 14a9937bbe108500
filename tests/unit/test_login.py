"""The login token source's pure parts: the credentials file, the answer's token field, the
endpoint URL, and the scenario's `auth.login` validation (the logins themselves run against a
real endpoint in tests/integration/test_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.auth.login import Credential, field_at, login_url, read_credentials
from harness.config.scenario import load_scenario
from records.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_credentials_skip_blanks_and_comments_and_keep_colons_in_passwords(
        tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# load-test accounts\n\nann:secret-1\n  bob:pa:ss  \n")
    found = read_credentials(path)
    assert [(c.line, c.username, c.password) for c in found] == [(3, "ann", "secret-1"),
                                                                 (4, "bob", "pa:ss")]
    assert "secret-1" not in repr(found[0]) and "ann" in repr(found[0])


def test_every_bad_credentials_line_is_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("ann:ok\nno-colon\n:no-user\nno-password:\n")
    with pytest.raises(InputError) as caught:
        read_credentials(path)
    assert caught.value.problems == [f"auth.login.credentials_file {path}: 3 lines are not "
                                     "`username:password` (lines 2, 3, 4)"]


@pytest.mark.parametrize("text,problem", [("", "no credentials"),
                                          ("# only a comment\n", "no credentials")])
def test_a_file_without_credentials_is_refused(tmp_path: Path, text: str,
                                               problem: str) -> None:
    path = tmp_path / "users.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        read_credentials(path)


def test_a_missing_credentials_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        read_credentials(tmp_path / "absent.txt")


def test_the_token_is_read_at_a_dotted_path() -> None:
    answer = {"data": {"access_token": "t1", "user": {"id": 3}}, "token": "t0"}
    assert field_at(answer, "token") == "t0"
    assert field_at(answer, "data.access_token") == "t1"
    assert field_at(answer, "data.missing") is None
    assert field_at(answer, "token.deeper") is None


def test_a_login_path_is_taken_on_the_api_origin() -> None:
    assert login_url("/api/v1/auth/login", "http://127.0.0.1:8080/api/v1?x=1") == \
        "http://127.0.0.1:8080/api/v1/auth/login"
    assert login_url("https://sso.example.com/token", "http://127.0.0.1:8080") == \
        "https://sso.example.com/token"


def test_login_mode_needs_its_settings_and_they_are_strict(tmp_path: Path) -> None:
    base = (ROOT / "scenarios/smoke.yaml").read_text().replace(
        "thresholds: ", f"thresholds: {ROOT / 'scenarios'}/")
    missing = tmp_path / "missing.yaml"
    missing.write_text(base + "auth: {mode: login}\n")
    with pytest.raises(InputError, match="mode login needs 'login'"):
        load_scenario(missing)
    typo = tmp_path / "typo.yaml"
    typo.write_text(base + "auth: {mode: login, login: {url: /login, credentials: u.txt}}\n")
    with pytest.raises(InputError) as caught:
        load_scenario(typo)
    text = " ".join(caught.value.problems)
    assert "auth.login.credentials_file" in text and "auth.login.credentials" in text
    good = tmp_path / "good.yaml"
    good.write_text(base + "auth: {mode: login, login: {url: /login, credentials_file: u.txt,"
                           " token_field: data.token}}\n")
    scenario, _ = load_scenario(good)
    assert scenario.auth.login is not None and scenario.auth.login.username_field == "username"


def test_credential_repr_never_shows_the_password() -> None:
    assert "hunter2" not in repr(Credential(1, "ann", "hunter2"))
    assert "hunter2" not in str(Credential(1, "ann", "hunter2"))
