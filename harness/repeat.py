"""``harness gate --repeat N``: the same gate N times, and whether it gave the same answer.

A CI gate is only worth its verdict if the verdict does not depend on the run:
a correct plan that fails one run in five teaches a team to press "retry". Each
run starts a fresh cluster with the same options; the summary counts, per
check, how often it held, failed or did not run, and names every check whose
outcome changed between runs ("flaky: traffic.no_errors failed 1 of 5"), with
the messages of the runs where it failed, so a flip is evidence for a bug
report, not a rumour.

A check *flips* when its outcome is not the same in every run: held (pass or
warn), failed, not run, or absent (a run that never reached it). Exit 1 when
any check flipped or failed in any run, or any run was NOT SAFE (``--require-all``
with a check not run), 0 when every run gave the same safe verdict.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from harness.dsn import redact
from harness.progress import Progress, quiet

if TYPE_CHECKING:
    from harness.gate import GateReport

__all__ = ["MAX_REPEAT", "RepeatSummary", "gate_repeatedly", "repeat_count", "repeat_gate"]

MAX_REPEAT = 100
"""More runs than this is a soak test, not a gate: 100 kct gates take over 10 minutes."""

REPEAT_JSON = "repeat.json"
RUNS_DIRECTORY = "repeat"

Outcome = Literal["held", "failed", "not run", "absent"]


def repeat_count(text: str) -> int:
    """``--repeat``'s argparse type: a whole number from 1 to :data:`MAX_REPEAT`."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_REPEAT} runs (the cap), got {value}"
        )
    return value


def _outcome(verdict: str | None) -> Outcome:
    if verdict is None:
        return "absent"
    if verdict == "fail":
        return "failed"
    if verdict == "not_run":
        return "not run"
    return "held"


@dataclass(frozen=True)
class RunResult:
    number: int
    safe: bool
    seconds: float
    verdicts: dict[str, str]  # check name -> pass, fail, warn, not_run
    failures: dict[str, str]  # check name -> its reason and first offenders, when failed

    def to_json(self) -> dict[str, object]:
        return {
            "run": self.number,
            "verdict": "safe" if self.safe else "unsafe",
            "seconds": round(self.seconds, 2),
            "failed": sorted(self.failures),
            "not_run": sorted(n for n, v in self.verdicts.items() if v == "not_run"),
        }


@dataclass
class RepeatSummary:
    """Every run's verdicts, and per check how many runs gave each outcome."""

    plan: str
    runs: list[RunResult] = field(default_factory=list)

    def names(self) -> list[str]:
        """Every check any run reported, in the order the first run that had it did."""
        return list(dict.fromkeys(n for run in self.runs for n in run.verdicts))

    def counts(self, name: str) -> dict[Outcome, int]:
        found: dict[Outcome, int] = {}
        for run in self.runs:
            outcome = _outcome(run.verdicts.get(name))
            found[outcome] = found.get(outcome, 0) + 1
        return found

    def flaky(self) -> list[str]:
        return [n for n in self.names() if len(self.counts(n)) > 1]

    def failed(self) -> list[str]:
        return [n for n in self.names() if self.counts(n).get("failed", 0)]

    def unsafe_runs(self) -> int:
        """Runs whose verdict was NOT SAFE: a failed check, or a check not run under
        ``--require-all``."""
        return sum(not r.safe for r in self.runs)

    @property
    def exit_code(self) -> int:
        return 1 if self.flaky() or self.failed() or self.unsafe_runs() else 0

    def lines(self) -> list[str]:
        """The summary a person reads: one line per flipped or failed check, then the verdict."""
        total = len(self.runs)
        out: list[str] = []
        for name in self.names():
            counts = self.counts(name)
            if len(counts) == 1 and "failed" not in counts:
                continue
            what = ", ".join(f"{outcome} {n} of {total}" for outcome, n in sorted(counts.items()))
            label = "flaky" if len(counts) > 1 else "failed every run"
            out.append(f"{label}: {name} {what}")
            for run in self.runs:
                if name in run.failures:
                    out.append(f"    run {run.number}: {run.failures[name]}")
        seconds = [r.seconds for r in self.runs]
        flips = len(self.flaky())
        verdict = (
            "the same SAFE verdict every run"
            if self.exit_code == 0
            else f"{flips} of {len(self.names())} checks flipped, "
            f"{len(self.failed())} failed in at least one run, "
            f"{self.unsafe_runs()} of {total} runs NOT SAFE"
        )
        out.append(
            f"plan {self.plan!r}: {total} runs, {verdict}; "
            f"{min(seconds):.1f} to {max(seconds):.1f} sec per run "
            f"(mean {sum(seconds) / total:.1f})"
        )
        return out

    def to_json(self) -> dict[str, object]:
        total = len(self.runs)
        return {
            "plan": self.plan,
            "runs": [r.to_json() for r in self.runs],
            "checks": {
                name: {outcome: n for outcome, n in sorted(self.counts(name).items())}
                for name in self.names()
            },
            "flaky": [
                {"check": n, "failed": self.counts(n).get("failed", 0), "of": total}
                for n in self.flaky()
            ],
            "failed": self.failed(),
            "verdict": "stable" if self.exit_code == 0 else "unstable",
            "seconds_per_run": [round(r.seconds, 2) for r in self.runs],
        }


def _failure_text(reason: str, details: tuple[str, ...], *, keep: int = 3) -> str:
    shown = "; ".join(details[:keep])
    more = f" (and {len(details) - keep} more)" if len(details) > keep else ""
    return f"{reason}" + (f": {shown}{more}" if shown else "")


def record(report: GateReport, *, number: int) -> RunResult:
    return RunResult(
        number=number,
        safe=report.safe,
        seconds=report.seconds,
        verdicts={c.name: c.verdict for c in report.checks},
        failures={
            c.name: _failure_text(c.reason, c.details) for c in report.checks if c.verdict == "fail"
        },
    )


def repeat_gate(
    run_once: Callable[[], GateReport],
    *,
    times: int,
    reports: Path,
    progress: Progress = quiet,
) -> RepeatSummary:
    """Run the gate ``times`` times; each run's gate.json and the summary go under ``reports``.

    Each run's ``gate.json`` is kept (``repeat/run-01.json`` …) because a flip is
    only useful with the messages of the run that flipped.
    """
    from harness.verdict import verdict_word

    summary = RepeatSummary(plan="")
    runs = reports / RUNS_DIRECTORY
    runs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number in range(1, times + 1):
        progress(f"run {number} of {times}: starting a fresh cluster")
        report = run_once()
        summary.plan = report.plan
        report.write(runs / f"run-{number:02d}.json")
        result = record(report, number=number)
        summary.runs.append(result)
        failed = f"; failed: {', '.join(sorted(result.failures))}" if result.failures else ""
        progress(
            f"run {number} of {times}: {verdict_word(report)} in {report.seconds:.1f} sec{failed}"
        )
        write_summary(summary, reports=reports)
    progress(f"{times} runs in {time.perf_counter() - started:.1f} sec")
    return summary


def write_summary(summary: RepeatSummary, *, reports: Path) -> Path:
    """``repeat.json``, rewritten after each run so an interrupted series leaves its evidence."""
    path = reports / REPEAT_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(summary.to_json(), indent=2)) + "\n", encoding="utf-8")
    return path


def gate_repeatedly(
    gate: Callable[..., GateReport], *, args: argparse.Namespace, progress: Progress = quiet
) -> int:
    """``harness gate --repeat N``: the runs, the summary on stdout, and the exit code.

    ``gate`` is the command's own gate with every option bound; each run's
    checks are not printed (only its verdict), and ``--require-all`` applies to each.
    """

    def run_once() -> GateReport:
        report = gate(emit=quiet)
        report.require_all = args.require_all
        return report

    summary = repeat_gate(run_once, times=args.repeat, reports=args.reports, progress=progress)
    for line in summary.lines():
        print(line, flush=True)
    progress(
        f"repeat summary written to {args.reports / REPEAT_JSON}, each run's gate.json to "
        f"{args.reports / RUNS_DIRECTORY}/"
    )
    return summary.exit_code
