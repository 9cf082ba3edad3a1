"""``--pg-plan``'s items for checks the gate could not run: skipped, or failed on demand.

The items are made here from checks rather than from a gate run (that is
scenarios/test_plugin_repo.py): what is under test is how pytest reports them.
"""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

CONFTEST = """
import pytest
from harness.invariants import Check
from harness.testing.fix_plan import GateCheckItem


class GateChecks(pytest.File):
    def collect(self):
        for check in (
            Check("migrate.steps", "pass", "all 6 steps applied"),
            Check.not_run(
                "replica.matches_primary",
                why="there is no streaming replica",
                run_with="set DATABASE_READONLY_URL",
            ),
        ):
            yield GateCheckItem.from_parent(self, name=check.name, check=check)


def pytest_collect_file(file_path, parent):
    if file_path.name == "gate.checks":
        return GateChecks.from_parent(parent, path=file_path)
"""


@pytest.fixture
def gate_items(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".checks", gate="")
    return pytester


def test_a_check_not_run_is_skipped_with_its_reason(gate_items: pytest.Pytester) -> None:
    result = gate_items.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*SKIPPED*not run: there is no streaming replica to run it: set DATABASE_READONLY_URL*"]
    )


def test_require_all_fails_a_check_not_run(gate_items: pytest.Pytester) -> None:
    result = gate_items.runpytest("--pg-require-all", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replica.matches_primary: not run*",
            "*to run it: set DATABASE_READONLY_URL (--pg-require-all)",
        ]
    )
