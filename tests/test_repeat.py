"""``--repeat``: how runs are counted, which checks flipped, the exit code, the cap.

The runs here are gate reports built in the test: what is under test is the
counting across runs, not a gate (the measured series are in docs/verdict.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gate import GateReport
from harness.invariants import Check
from harness.invariants.result import Verdict
from harness.repeat import MAX_REPEAT, repeat_gate

PLANS = Path(__file__).resolve().parent.parent / "plans"


def _run(*verdicts: tuple[str, Verdict]) -> GateReport:
    checks = [
        Check(name, verdict, f"{name} {verdict}", ("deadlock detected",) * (verdict == "fail"))
        for name, verdict in verdicts
    ]
    return GateReport(plan="kct", checks=checks, seconds=7.0)


def _series(*runs: GateReport) -> Callable[[], GateReport]:
    pending = list(runs)
    return lambda: pending.pop(0)


def test_a_check_that_failed_once_is_named_flaky_with_its_message(tmp_path: Path) -> None:
    ok: list[tuple[str, Verdict]] = [("migrate.steps", "pass"), ("traffic.no_errors", "pass")]
    failing: list[tuple[str, Verdict]] = [("migrate.steps", "pass"), ("traffic.no_errors", "fail")]
    runs = [_run(*ok), _run(*ok), _run(*failing), _run(*ok), _run(*ok)]
    lines: list[str] = []
    summary = repeat_gate(_series(*runs), times=5, reports=tmp_path, progress=lines.append)
    assert summary.flaky() == ["traffic.no_errors"]
    assert summary.exit_code == 1
    text = summary.lines()
    assert text[0] == "flaky: traffic.no_errors failed 1 of 5, held 4 of 5"
    assert text[1] == "    run 3: traffic.no_errors fail: deadlock detected"
    assert lines[5] == "run 3 of 5: NOT SAFE (1 check failed) in 7.0 sec; failed: traffic.no_errors"
    saved = json.loads((tmp_path / "repeat.json").read_text())
    assert saved["flaky"] == [{"check": "traffic.no_errors", "failed": 1, "of": 5}]
    assert saved["checks"]["migrate.steps"] == {"held": 5}
    assert len(list((tmp_path / "repeat").glob("run-*.json"))) == 5


def test_the_same_verdict_every_run_exits_0(tmp_path: Path) -> None:
    same: list[tuple[str, Verdict]] = [
        ("migrate.steps", "pass"),
        ("lint.squawk", "warn"),
        ("pooler.x", "not_run"),
    ]
    summary = repeat_gate(_series(*[_run(*same)] * 3), times=3, reports=tmp_path)
    assert summary.flaky() == []
    assert summary.exit_code == 0
    assert "the same SAFE verdict every run" in summary.lines()[-1]


def test_a_check_that_fails_every_run_is_not_flaky_but_fails(tmp_path: Path) -> None:
    runs = [_run(("rollback.exact", "fail"))] * 2
    summary = repeat_gate(_series(*runs), times=2, reports=tmp_path)
    assert summary.flaky() == []
    assert summary.failed() == ["rollback.exact"]
    assert summary.exit_code == 1
    assert summary.lines()[0] == "failed every run: rollback.exact failed 2 of 2"


def test_a_check_missing_from_a_run_is_a_flip(tmp_path: Path) -> None:
    runs = [_run(("a.b", "pass"), ("c.d", "pass")), _run(("a.b", "pass"))]
    summary = repeat_gate(_series(*runs), times=2, reports=tmp_path)
    assert summary.flaky() == ["c.d"]
    assert summary.counts("c.d") == {"held": 1, "absent": 1}


@pytest.mark.parametrize("times", ["0", str(MAX_REPEAT + 1)])
def test_a_repeat_out_of_range_exits_2_before_anything_starts(tmp_path: Path, times: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(PLANS / "kct"),
         "--repeat", times, "--reports", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--repeat" in done.stderr
    assert f"from 1 to {MAX_REPEAT} runs (the cap), got {times}" in done.stderr
    assert not (tmp_path / "reports").exists()
    assert "starting" not in done.stderr


def test_require_all_with_a_check_not_run_exits_1_every_run(tmp_path: Path) -> None:
    """Nothing flips and nothing fails, yet every run is NOT SAFE: the series is too."""

    def strict() -> GateReport:
        report = _run(("migrate.steps", "pass"), ("traffic.stall", "not_run"))
        report.require_all = True
        return report

    summary = repeat_gate(strict, times=2, reports=tmp_path)
    assert (summary.flaky(), summary.failed()) == ([], [])
    assert summary.unsafe_runs() == 2
    assert summary.exit_code == 1
    assert "2 of 2 runs NOT SAFE" in summary.lines()[-1]
