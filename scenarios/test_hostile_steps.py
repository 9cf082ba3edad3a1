"""Steps that turn on the gate's own sessions still get a verdict, never a crash.

A migration can change what every session of its database meets (``ALTER DATABASE …
SET statement_timeout = '1ms'``, ``default_transaction_read_only = on``) or end the
other sessions outright (``pg_terminate_backend``). The application's sessions
meeting that is the finding; the gate's own sessions (the superuser's) must keep
working, or, when the step ended them, say so as the step's finding. Before, each of
these stopped the gate with "the server refused" and no report.
"""

from __future__ import annotations

from pathlib import Path

from planting import PLANS, Edit, failed, new_step, planted, run_gate

from harness.cluster import Cluster
from harness.testing.fix_legacy import LegacyDatabase

_FOR_DATABASE = (
    "DO $x$ BEGIN EXECUTE format('ALTER DATABASE %I {}', current_database()); END $x$;\n"
)


def _gate(
    edits: tuple[Edit, ...], cluster: Cluster, legacy: LegacyDatabase, tmp: Path
) -> dict[str, list[str]]:
    plan = planted(PLANS / "kct", tmp / "plan", edits)
    return failed(run_gate(plan, cluster, legacy.endpoints, tmp))


def test_database_settings_that_break_sessions_are_the_applications_finding(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """Every new session of the database gets a 1 ms statement timeout and read-only
    transactions: the application's new sessions fail, the harness's do not."""
    found = _gate(
        new_step(
            7,
            "settings",
            up=_FOR_DATABASE.format("SET statement_timeout = ''1ms''")
            + _FOR_DATABASE.format("SET default_transaction_read_only = on"),
            down=_FOR_DATABASE.format("RESET statement_timeout")
            + _FOR_DATABASE.format("RESET default_transaction_read_only"),
        ),
        cluster,
        legacy_database,
        tmp_path,
    )
    assert set(found) == {"sessions.new_sessions_work", "privileges.tried"}, found
    timeouts = found["sessions.new_sessions_work"]
    assert any("canceling statement due to statement timeout" in d for d in timeouts), found
    assert any("read-only" in d for d in found["privileges.tried"]), found


def test_a_step_ending_the_databases_sessions_is_its_finding(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    found = _gate(
        (
            Edit(
                "up/006_search_path.sql",
                None,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity\n"
                " WHERE datname = current_database() AND pid <> pg_backend_pid();\n",
            ),
        ),
        cluster,
        legacy_database,
        tmp_path,
    )
    assert list(found) == ["migrate.steps"], found
    (detail,) = found["migrate.steps"]
    assert detail.startswith("up/006_search_path.sql: it ended other sessions of the database")
