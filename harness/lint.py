"""A static pass over a plan's SQL with squawk, folded into the gate's findings as warnings.

Squawk reads SQL without a database, so it cannot tell whether a warning bites
here; the gate's live checks decide that. Its warnings are advice (verdict
``warn``) and never fail the gate on their own. Two rules are left out because
the runner does what they ask for every step: it sets ``lock_timeout`` and
``statement_timeout`` and runs the step in a transaction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness.invariants.result import Check
from harness.plan import Plan

__all__ = ["lint_plan"]

HANDLED_BY_RUNNER = ("require-lock-timeout", "require-statement-timeout")


def _squawk() -> str | None:
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.exists() else shutil.which("squawk")


def lint_plan(plan: Plan) -> Check:
    squawk = _squawk()
    if squawk is None:
        return Check(
            "lint.squawk",
            "warn",
            "squawk is not installed, so the plan's SQL was not linted (pip install squawk-cli)",
        )
    files = [str(s.path) for s in (*plan.up, *plan.down)]
    done = subprocess.run(
        [squawk, "--reporter", "json", "--assume-in-transaction", "--pg-version", "15",
         "--exclude", ",".join(HANDLED_BY_RUNNER), *files],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    try:
        findings = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        return Check("lint.squawk", "warn", f"squawk gave no readable report: {done.stderr[:200]}")
    offenders = []
    for f in findings:
        where = Path(f["file"])
        label = f"{where.parent.name}/{where.name}"
        help_text = f" ({f['help']})" if f.get("help") else ""
        offenders.append(f"{label} line {f['line']}: {f['rule_name']}: {f['message']}{help_text}")
    return Check.of(
        "lint.squawk",
        offenders=offenders,
        ok=f"squawk found nothing to warn about in {len(files)} files",
        failed=f"squawk warns about {len(offenders)} statements (advice; live checks decide)",
        warn_only=True,
    )
