"""The gate's verdict in one line, saying what it left unchecked.

"SAFE" alone reads as "everything was checked"; a gate without a replica or
without traffic checked less, so the line counts the checks that did not run
("SAFE — 2 checks not run"), and under ``--require-all`` they make it NOT SAFE.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.gate import GateReport

__all__ = ["add_verdict_options", "verdict_line", "verdict_word"]


def add_verdict_options(parser: argparse.ArgumentParser) -> None:
    """``harness gate``'s options for a verdict CI can rely on."""
    from harness.repeat import MAX_REPEAT, repeat_count

    parser.add_argument(
        "--require-all",
        action="store_true",
        help="a check that could not run (no replica, no pooler, --no-traffic) fails the "
        "gate (exit 1) instead of being listed as not run; for CI",
    )
    parser.add_argument(
        "--repeat",
        type=repeat_count,
        metavar="N",
        help=f"run the whole gate N times (1 to {MAX_REPEAT}), each on a fresh cluster, and "
        "report each check's outcomes; exit 1 when any check flipped or failed in any run",
    )


def verdict_word(report: GateReport) -> str:
    """SAFE or NOT SAFE, with the counts that qualify it."""
    failed = sum(c.verdict == "fail" for c in report.checks)
    not_run = sum(not c.ran for c in report.checks)
    skipped = f"{not_run} check{'s' if not_run != 1 else ''} not run"
    if report.safe:
        return "SAFE" + (f" — {skipped}" if not_run else "")
    reasons = [f"{failed} check{'s' if failed != 1 else ''} failed"] if failed else []
    if not_run and report.require_all:
        reasons.append(f"{skipped}, and --require-all fails them")
    elif not_run:
        reasons.append(skipped)
    return f"NOT SAFE ({', '.join(reasons)})"


def verdict_line(report: GateReport) -> str:
    return f"plan {report.plan!r}: {verdict_word(report)} in {report.seconds:.1f} sec"
