"""The harness's exceptions, under the base classes of records/errors.py (HarnessError,
InputError, RecordError). Library code raises these; only the CLI turns them into exit codes
(see docs/cli.md)."""

from __future__ import annotations

from records.errors import HarnessError


class TargetUnreachable(HarnessError):
    """The target or the local stack could not be reached or started."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class RunFailed(HarnessError):
    """A run or check completed and found a failure."""

    exit_code = 1


class FaultError(HarnessError):
    """A fault action could not do what it was asked (unknown role, nothing to interrupt,
    no way to add latency). Chaos Toolkit records it as the activity's failure."""

    exit_code = 1


class SourceError(HarnessError):
    """A monitoring source answered but not with what was asked (a PromQL error, an
    unparsable page). Recorded as a failed poll of that source; the run goes on."""

    exit_code = 1


class CheckFailed(HarnessError):
    """A checklist check found the target not doing what the line says."""

    exit_code = 1


class CheckSkipped(HarnessError):
    """A checklist check could not be run here (e.g. no database DSN given); says why."""

    exit_code = 0
