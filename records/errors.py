"""The errors of the results format and of input files, the base of the harness's exception
tree (harness/errors.py derives the rest). Library code raises these; only the CLI turns
them into exit codes (see docs/cli.md)."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 1


class InputError(HarnessError):
    """Bad input: scenario, profile or options. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.hint = hint


class RecordError(HarnessError):
    """A producer handed the Recorder a row that does not fit its table (a bug in the
    harness, not in the input): raised to the producer, nothing buffered."""

    exit_code = 1
