"""Recovery conflicts as the router sees them, and their verdict per step, without a server."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest

from harness.traffic.clients import BEFORE, Request, Timeline
from harness.traffic.conflicts import check_recovery_conflicts, is_recovery_conflict, replica_side

CANCELLED = "canceling statement due to conflict with recovery"


@pytest.mark.parametrize(
    ("exc", "conflict", "retried"),
    [
        (psycopg.errors.SerializationFailure(CANCELLED), True, True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True, True),
        (
            psycopg.errors.AdminShutdown("terminating connection due to conflict with recovery"),
            True,
            True,
        ),
        (psycopg.errors.UndefinedTable('relation "products" does not exist'), False, False),
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), False, True),
    ],
)
def test_what_the_router_retries_on_the_primary(
    exc: psycopg.Error, *, conflict: bool, retried: bool
) -> None:
    assert is_recovery_conflict(exc) is conflict
    assert replica_side(exc, broken=False) is retried
    assert replica_side(psycopg.errors.UndefinedTable("x"), broken=True)


def _timeline() -> Timeline:
    timeline = Timeline()
    timeline.times, timeline.labels = (
        [0.0, 10.0, 11.0],
        [BEFORE, "up/002_move.sql", "after up/002_move.sql"],
    )
    timeline.steps.add("up/002_move.sql")
    timeline.owner["after up/002_move.sql"] = "up/002_move.sql"
    return timeline


def _read(at: float, *, ok: bool) -> Request:
    return Request(
        query="report",
        role="app",
        path="reader",
        kind="read",
        client=0,
        start=at - 0.3,
        end=at + 0.1,
        ok=ok,
        rerouted=True,
        conflict=CANCELLED,
        conflict_sqlstate="40001",
        conflict_at=at,
    )


def test_no_conflict_passes_a_retried_one_warns_one_that_reached_the_application_fails() -> None:
    plain = Request(query="q", role="app", path="reader", kind="read", client=0, start=1, end=2)
    assert check_recovery_conflicts([plain], _timeline()).verdict == "pass"
    # Replay ran behind the step: a conflict just after it is still the step's.
    warned = check_recovery_conflicts(
        [plain, _read(10.5, ok=True), _read(11.2, ok=True)], _timeline()
    )
    assert warned.verdict == "warn"
    assert warned.passed
    (detail,) = warned.details
    assert detail.startswith("up/002_move.sql: the replica cancelled 2 reads (report)")
    assert "2 retried on the primary by the router, unseen" in detail
    assert "hot_standby_feedback" in warned.reason
    assert "max_standby_streaming_delay" in warned.reason
    failed = check_recovery_conflicts([_read(10.5, ok=True), _read(10.6, ok=False)], _timeline())
    assert failed.verdict == "fail"
    assert "1 reached the application; 1 retried on the primary" in failed.details[0]
