"""Applying plans: one transaction per step, a ledger, a verified backup first."""

from harness.runner.backup import Backup, take_backup, verify_backup
from harness.runner.ledger import AppliedStep
from harness.runner.runner import Runner, StatementError, StepOutcome

__all__ = [
    "AppliedStep",
    "Backup",
    "Runner",
    "StatementError",
    "StepOutcome",
    "take_backup",
    "verify_backup",
]
