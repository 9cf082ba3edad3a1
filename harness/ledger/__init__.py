"""The change ledger: every row change the gate did not make, told apart by who made it."""

from harness.ledger.accounting import Accounting, mask_data
from harness.ledger.ledger import ChangeLedger, LedgerUnavailable, StepChange
from harness.ledger.writes import check_writes_accounted

__all__ = [
    "Accounting",
    "ChangeLedger",
    "LedgerUnavailable",
    "StepChange",
    "check_writes_accounted",
    "mask_data",
]
