"""A static pass over a plan's SQL with squawk, folded into the gate's findings as warnings.

Squawk reads SQL without a database, so it cannot tell whether a warning bites
here; the gate's live checks decide that. Its warnings are advice (verdict
``warn``) and never fail the gate on their own. Two rules are left out because
the runner does what they ask for every step: it sets ``lock_timeout`` and
``statement_timeout`` and runs the step in a transaction.

Advice is grouped by rule (how many statements, in which files), so a safe plan
reads in a few lines; the report file keeps every statement. Without squawk the
check warns; in CI (``CI=true``) it fails, since there a missing tool is a
broken pipeline, not a choice. A squawk that crashes (another exit status than
its own 0 and 1, or no report at all) warns too, and in CI stops the gate with
exit 2: an empty report from a crash is not "nothing to warn about".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from harness.errors import ToolFailed
from harness.invariants.result import Check
from harness.plan import Plan

__all__ = ["lint_plan"]

HANDLED_BY_RUNNER = ("require-lock-timeout", "require-statement-timeout")


def _squawk() -> str | None:
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.exists() else shutil.which("squawk")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing() -> Check:
    reason = "squawk is not installed, so the plan's SQL was not linted (pip install squawk-cli)"
    if _in_ci():
        return Check("lint.squawk", "fail", f"{reason}; CI=true requires it")
    return Check("lint.squawk", "warn", reason)


def _report(
    done: subprocess.CompletedProcess[str], *, files: list[str]
) -> list[dict[str, Any]] | Check:
    """Squawk's findings, or what to say when it gave none it can be taken at.

    Squawk prints a JSON list, ``[]`` when it has nothing to say, and exits 1 when
    a finding is an error (a statement it cannot parse). Empty output, output that
    is not a list, or another exit status means it crashed: that is not "nothing
    to warn about". In CI it stops the gate (exit 2); elsewhere it warns.
    """
    findings: object = None
    if done.stdout.strip():
        try:
            findings = json.loads(done.stdout)
        except json.JSONDecodeError:
            findings = None
    if isinstance(findings, list) and (done.returncode == 0 or (done.returncode == 1 and findings)):
        return [f for f in findings if isinstance(f, dict)]
    what = "printed nothing" if not done.stdout.strip() else "printed no readable report"
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    stderr = said[0][:200] if said else "nothing on stderr"
    reason = (
        f"squawk exited {done.returncode} and {what} for {len(files)} files, so the plan's "
        f"SQL was not linted ({stderr}); run squawk on the files to see why, or upgrade it"
    )
    if _in_ci():
        raise ToolFailed(f"{reason}; CI=true requires a working squawk")
    return Check("lint.squawk", "warn", reason)


def _grouped(findings: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """One line per rule: how many statements, in which files, and squawk's advice."""
    lines = []
    by_rule: dict[str, list[int]] = {}
    for i, f in enumerate(findings):
        by_rule.setdefault(str(f["rule_name"]), []).append(i)
    for rule, indices in sorted(by_rule.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        files = Counter(labels[i] for i in indices)
        where = ", ".join(f"{name} ({count})" for name, count in sorted(files.items()))
        count = len(indices)
        message = findings[indices[0]]["message"]
        lines.append(f"{rule}: {count} statement{'s' if count != 1 else ''} in {where}: {message}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def lint_plan(plan: Plan) -> Check:
    squawk = _squawk()
    if squawk is None:
        return _missing()
    files = [str(s.path) for s in (*plan.up, *plan.down)]
    done = subprocess.run(
        [squawk, "--reporter", "json", "--assume-in-transaction", "--pg-version", "15",
         "--exclude", ",".join(HANDLED_BY_RUNNER), *files],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    findings = _report(done, files=files)
    if isinstance(findings, Check):
        return findings
    labels, listing = [], []
    for f in findings:
        where = Path(f["file"])
        label = f"{where.parent.name}/{where.name}"
        labels.append(label)
        help_text = f" ({f['help']})" if f.get("help") else ""
        # squawk counts lines from 0; editors and the runner's messages count from 1.
        line = int(f["line"]) + 1
        listing.append(f"{label} line {line}: {f['rule_name']}: {f['message']}{help_text}")
    if not findings:
        return Check(
            "lint.squawk", "pass", f"squawk found nothing to warn about in {len(files)} files"
        )
    rules = len({f["rule_name"] for f in findings})
    return Check(
        "lint.squawk",
        "warn",
        f"squawk warns about {_count(len(findings), 'statement')} under "
        f"{_count(rules, 'rule')} (advice; the live "
        "checks decide; every statement is listed in the report file)",
        tuple(_grouped(findings, labels)),
        tuple(listing),
    )
