"""The errors a user of pgcutover can meet.

Every error says what was checked, what was found and what to do about it. The
exit code is part of the contract with CI jobs: 2 means "the harness could not
do its job" (bad input, missing binaries, an unreachable server), which is a
different thing from 1, "the plan was checked and is not safe". 75 (sysexits'
EX_TEMPFAIL) means "the locks a step needs were held by others for the whole
budget; nothing of that step changed; run again later".
"""

from __future__ import annotations

import psycopg

__all__ = [
    "ClusterStartError",
    "ConnectionFailed",
    "EngineUnavailable",
    "HarnessError",
    "ImageUnavailable",
    "InfrastructureError",
    "LockContention",
    "PlanError",
    "ReportError",
    "RunInProgress",
    "StepFailed",
    "ToolFailed",
    "UsageError",
]


class HarnessError(Exception):
    """Root of every error pgcutover raises on purpose."""

    exit_code = 2


class UsageError(HarnessError):
    """The input given to the harness cannot be used as it is."""


class PlanError(UsageError):
    """A plan directory is malformed: a bad ``plan.toml``, a missing step file."""


class ReportError(UsageError):
    """A report file (``gate.json``, a load summary) is not in the shape pgcutover writes."""


class InfrastructureError(HarnessError):
    """Something the harness needs is missing or refused to work."""


class ToolFailed(InfrastructureError):
    """A program the gate runs (squawk) crashed or printed no report: its silence is no
    verdict."""


class ConnectionFailed(InfrastructureError, psycopg.OperationalError):
    """A server refused or never answered a connection; the DSN's password is hidden.

    Also a ``psycopg.OperationalError``, so code that probes a server and treats
    a refusal as "not yet" keeps catching it. ``reason`` is libpq's first line,
    redacted, for callers that put it into a message of their own.
    """

    def __init__(self, message: str, *, reason: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        # PgBouncer and PostgreSQL refusals are told apart by it (53300, 57P03, 08P01).
        self.sqlstate = sqlstate


class ClusterStartError(InfrastructureError):
    """A server process did not come up; carries the tail of its log."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- last lines of the log ---\n{log_tail}"
        super().__init__(message)


class EngineUnavailable(InfrastructureError):
    """No Docker engine answers, or the one that answers refuses this user."""


class ImageUnavailable(InfrastructureError):
    """A container image is not on the engine and can be neither pulled nor built."""


class StepFailed(HarnessError):
    """A migration step failed; the database is left as before that step.

    Exit code 1: the plan was run and found wanting, as with any other finding.
    """

    exit_code = 1

    def __init__(self, message: str, *, step: str, sqlstate: str | None = None) -> None:
        self.step = step
        self.sqlstate = sqlstate
        super().__init__(message)


class RunInProgress(InfrastructureError):
    """Another migrate or rollback holds the database's advisory lock; this one did nothing."""


class LockContention(HarnessError):
    """A step could not get its locks within the budget; it was rolled back, nothing changed.

    Not 1: the plan was not found wanting, other sessions were in the way. Not 2:
    nothing is broken. A job may retry later; sysexits' EX_TEMPFAIL says exactly that.
    """

    exit_code = 75

    def __init__(self, message: str, *, step: str, attempts: int, blockers: list[str]) -> None:
        self.step = step
        self.attempts = attempts
        self.blockers = blockers
        super().__init__(message)
