"""Tokens that must last a whole run: minted ones live the run's length plus a margin; a token
file whose tokens expire before the run ends is refused before anything starts."""

from __future__ import annotations

import time
from pathlib import Path

import jwt

from harness.auth.keys import TOKEN_MARGIN_S, mint_for_run, token_file_problems
from harness.auth.minting import TokenMinter

SECRET = "unit-test-secret-0123456789abcdefghij"
MINTER = TokenMinter("HS256", SECRET)
FOUR_HOURS_S = 4 * 3600.0


def _exp(token: str) -> float:
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="nova-streaming")
    return float(claims["exp"])


def test_minted_tokens_outlive_a_four_hour_soak() -> None:
    now = time.time()
    tokens = mint_for_run(MINTER, 3, FOUR_HOURS_S)
    assert len(tokens) == 3 and len(set(tokens)) == 3
    assert all(_exp(t) >= now + FOUR_HOURS_S + TOKEN_MARGIN_S - 2 for t in tokens)


def test_minted_token_count_is_bounded() -> None:
    assert len(mint_for_run(MINTER, 0, 60)) == 1
    assert len(mint_for_run(MINTER, 5000, 60)) == 1000


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tokens_that_last_the_run_are_accepted(tmp_path: Path) -> None:
    path = _file(tmp_path, MINTER.mint(expires_in_s=FOUR_HOURS_S + 600), "",
                 MINTER.mint(expires_in_s=FOUR_HOURS_S + 900))
    assert token_file_problems(path, FOUR_HOURS_S, time.time()) == []


def test_tokens_expiring_mid_run_are_refused_with_the_lifetime_needed(tmp_path: Path) -> None:
    path = _file(tmp_path, MINTER.mint(expires_in_s=3600), MINTER.mint(expires_in_s=5 * 3600))
    (problem,) = token_file_problems(path, FOUR_HOURS_S, time.time())
    assert "1 of 2 tokens expire before the run ends" in problem
    assert f"at least {int(FOUR_HOURS_S + TOKEN_MARGIN_S)} s" in problem


def test_every_problem_of_a_token_file_at_once(tmp_path: Path) -> None:
    path = _file(tmp_path, "not-a-token", MINTER.mint(expires_in_s=60), "a.b")
    problems = token_file_problems(path, 600, time.time())
    assert len(problems) == 2
    assert "2 of 3 lines are not JWTs (lines 1, 3)" in problems[0]
    assert "1 of 3 tokens expire" in problems[1]


def test_missing_and_empty_token_files(tmp_path: Path) -> None:
    (missing,) = token_file_problems(tmp_path / "absent.txt", 60, time.time())
    assert "absent.txt" in missing and "No such file" in missing
    (empty,) = token_file_problems(_file(tmp_path, "", "  "), 60, time.time())
    assert "no tokens" in empty


def test_problems_never_echo_a_token(tmp_path: Path) -> None:
    token = MINTER.mint(expires_in_s=60)
    problems = token_file_problems(_file(tmp_path, token), 600, time.time())
    assert problems and not any(token in p or "eyJ" in p for p in problems)
