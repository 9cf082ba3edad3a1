"""The traffic's reads follow the application's router: a read the replica cancels while it
replays a step (a recovery conflict) runs again on the primary, and the gate says so per
step, as a warning, with the settings that reduce it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from planting import run_gate
from psycopg import sql

from harness.cluster import Cluster
from harness.testing.fix_legacy import LegacyDatabase

PLANS = Path(__file__).resolve().parent.parent / "plans"
CLIENTS = 8
# A report that holds products for 300 ms on the replica; most requests are this one, so
# one is nearly always in flight when the move's ACCESS EXCLUSIVE lock is replayed.
SLOW_REPORT = """
[[workload.queries]]
name = "slow_report"
role = "kct_app"
kind = "read"
weight = 60
sql = "SELECT count(*) FROM products CROSS JOIN pg_sleep(0.3)"
"""


def _set_on_replica(dsn: str, ms: int | None) -> None:
    """``max_standby_streaming_delay`` on the replica (None: its default), once in effect."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if ms is None:
            conn.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        else:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET max_standby_streaming_delay = {}").format(
                    sql.Literal(f"{ms}ms")
                )
            )
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # The postmaster re-reads the file and signals every backend, this one too.
            row = conn.execute(
                "SELECT setting::int = coalesce(%s, boot_val::int) FROM pg_settings "
                "WHERE name = 'max_standby_streaming_delay'",
                (ms,),
            ).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.02)
        raise AssertionError(f"max_standby_streaming_delay did not become {ms} ms")


@pytest.fixture
def impatient_replica(legacy_database: LegacyDatabase) -> Iterator[None]:
    """A replica whose replay cancels the queries in its way after 10 ms (default: 30 s)."""
    dsn = legacy_database.endpoints.replica
    _set_on_replica(dsn, 10)
    try:
        yield
    finally:
        _set_on_replica(dsn, None)


def test_a_read_cancelled_by_replay_is_retried_on_the_primary_and_warned_of(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path, impatient_replica: None
) -> None:
    plan = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", plan)
    toml = plan / "plan.toml"
    toml.write_text(toml.read_text() + SLOW_REPORT)
    report = run_gate(
        plan, cluster, legacy_database.endpoints, tmp_path, traffic=True, clients=CLIENTS
    )
    checks = {c.name: c for c in report.checks}
    assert not [c for c in report.checks if c.verdict == "fail"], [
        str(c) for c in report.checks if not c.passed
    ]
    conflicts = checks["traffic.recovery_conflicts"]
    assert conflicts.verdict == "warn", conflicts
    assert "hot_standby_feedback" in conflicts.reason
    assert "max_standby_streaming_delay" in conflicts.reason
    # Named by the step whose replay cancelled them: the move of products, each time.
    moved = [d for d in conflicts.details if d.startswith("up/002_move_tables.sql: ")]
    assert moved, conflicts
    assert "retried on the primary by the router, unseen" in moved[0]
    assert "conflict with recovery" in moved[0]
    assert "reached the application" not in "".join(conflicts.details)
    assert checks["traffic.no_errors"].verdict == "pass"
    summary = report.context["traffic"]
    assert isinstance(summary, dict)
    assert summary["recovery_conflicts"] > 0
    assert summary["reads_rerouted"] >= summary["recovery_conflicts"]
