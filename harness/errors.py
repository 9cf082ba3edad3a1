"""The errors a user of pgcutover can meet.

Every error says what was checked, what was found and what to do about it. The
exit code is part of the contract with CI jobs: 2 means "the harness could not
do its job" (bad input, missing binaries, an unreachable server), which is a
different thing from 1, "the plan was checked and is not safe".
"""

from __future__ import annotations

__all__ = [
    "ClusterStartError",
    "EngineUnavailable",
    "HarnessError",
    "ImageUnavailable",
    "InfrastructureError",
    "PlanError",
    "StepFailed",
    "UsageError",
]


class HarnessError(Exception):
    """Root of every error pgcutover raises on purpose."""

    exit_code = 2


class UsageError(HarnessError):
    """The input given to the harness cannot be used as it is."""


class PlanError(UsageError):
    """A plan directory is malformed: a bad ``plan.toml``, a missing step file."""


class InfrastructureError(HarnessError):
    """Something the harness needs is missing or refused to work."""


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
