"""``traffic.old_connections_used`` from the requests' server connections, without a server."""

from __future__ import annotations

from datetime import datetime, timedelta

from harness.traffic.checks import check_old_connections
from harness.traffic.clients import BEFORE, Request, Timeline

T0 = datetime(2026, 1, 1, 12, 0, 0)


def _timeline() -> Timeline:
    timeline = Timeline()
    timeline.times, timeline.labels = ([0.0, 10.0], [BEFORE, "up/001_move.sql"])
    timeline.steps.add("up/001_move.sql")
    return timeline


def _on(path: str, at: float, pid: int, opened: float) -> Request:
    return Request(
        query=f"q_{path}",
        role="app",
        path=path,
        kind="write" if path == "writer" else "read",
        client=0,
        start=at,
        end=at + 0.01,
        ok=True,
        pid=pid,
        backend_start=T0 + timedelta(seconds=opened),
    )


# The reader reuses its old connection; the writer's one request before the step ran
# on connection 20, and its requests after it all ran on 21, opened during the step.
REQUESTS = [
    _on("reader", 1.0, 10, 0.5),
    _on("reader", 12.0, 10, 0.5),
    _on("writer", 2.0, 20, 1.5),
    _on("writer", 12.0, 21, 10.5),
    _on("writer", 13.0, 21, 10.5),
]


def test_an_old_connection_left_idle_by_chance_counts_as_exercised() -> None:
    check = check_old_connections(
        REQUESTS, _timeline(), idle_after_first_step={(20, T0 + timedelta(seconds=1.5))}
    )
    assert check.passed, str(check)
    assert "PgBouncer writer: none, but 1 opened before it were open and idle" in str(check)
    assert "PgBouncer reader: 1" in str(check)


def test_old_connections_closed_by_the_first_step_fail() -> None:
    # Connection 20 is gone (a pooler that uses each connection once); 21 is idle.
    check = check_old_connections(
        REQUESTS, _timeline(), idle_after_first_step={(21, T0 + timedelta(seconds=10.5))}
    )
    assert not check.passed
    assert "PgBouncer writer: none of 2 requests after the first step" in str(check)
