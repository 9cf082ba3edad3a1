"""Squawk's advice, as the gate shows it: grouped, 1-based, and required in CI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import lint
from harness.errors import ToolFailed
from harness.plan import load_plan
from harness.testing.fix_cluster import missing_capability

KCT = Path(__file__).resolve().parent.parent / "plans" / "kct"


def test_advice_is_grouped_by_rule_and_listed_in_full_with_1_based_lines() -> None:
    if lint._squawk() is None:
        missing_capability("squawk is not installed (pip install squawk-cli)")
    check = lint.lint_plan(load_plan(KCT))
    assert check.verdict == "warn"
    rules = {d.split(":", 1)[0] for d in check.details}
    # One line per rule, however many statements it flags.
    assert len(check.details) == len(rules) < len(check.listing)
    assert any(d.startswith("ban-drop-schema: 5 statements in down/") for d in check.details)
    # `DROP SCHEMA audit;` is on line 3 of its file (after a two-line comment).
    assert any(
        item.startswith("down/001_create_roles_and_schemas.sql line 3: ban-drop-schema")
        for item in check.listing
    )
    assert all(" line 0:" not in item for item in check.listing)
    assert check.to_json()["listing"] == list(check.listing)


@pytest.mark.parametrize(("ci", "verdict"), [("true", "fail"), ("", "warn")])
def test_missing_squawk_fails_in_ci_and_warns_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, verdict: str
) -> None:
    monkeypatch.setattr(lint, "_squawk", lambda: None)
    monkeypatch.setenv("CI", ci)
    check = lint.lint_plan(load_plan(KCT))
    assert check.verdict == verdict
    assert "squawk is not installed" in check.reason


@pytest.mark.parametrize(("ci", "verdict"), [("true", None), ("", "warn")])
def test_a_squawk_that_crashes_is_no_all_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, verdict: str | None
) -> None:
    """Squawk 2.x gives up on a file that is not UTF-8: exit 1, nothing on stdout.

    The file is rewritten after the plan was read (the plan's own loader refuses such
    a file), so the real squawk meets it and crashes as it would on any file it
    cannot read.
    """
    if lint._squawk() is None:
        missing_capability("squawk is not installed (pip install squawk-cli)")
    copy = tmp_path / "plan"
    shutil.copytree(KCT, copy)
    plan = load_plan(copy)
    plan.up[0].path.write_bytes(b"SELECT '\xff\xfe';\n")
    monkeypatch.setenv("CI", ci)
    if verdict is None:
        with pytest.raises(ToolFailed) as raised:
            lint.lint_plan(plan)
        assert raised.value.exit_code == 2
        message = str(raised.value)
    else:
        check = lint.lint_plan(plan)
        assert check.verdict == verdict
        message = check.reason
    assert "squawk exited 1 and printed nothing for 12 files" in message
    assert "stream did not contain valid UTF-8" in message
