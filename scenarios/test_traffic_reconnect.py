"""A client of the application's traffic whose connection broke, and whose reconnect is
refused: each refusal is a failed request, as the application would see it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql

from harness.cluster import Cluster, Endpoints
from harness.databases import connect, create_database, drop_database
from harness.plan.workload import Workload, WorkloadQuery
from harness.testing.fix_legacy import fresh_name
from harness.traffic.checks import check_no_errors
from harness.traffic.clients import Request, Traffic
from harness.traffic.logins import Logins


@pytest.fixture
def direct(cluster: Cluster) -> Iterator[tuple[Endpoints, str]]:
    """A small database reached directly (no pooler: the server itself refuses the
    reconnect), and a role of its own that logs in to read it."""
    name, role = fresh_name("reconnect"), fresh_name("reconnect_app")
    dsn = create_database(cluster.endpoints.primary, name)
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON t TO {}").format(sql.Identifier(role)))
    try:
        yield Endpoints(primary=dsn, replica=dsn, writer=dsn, reader=dsn), role
    finally:
        drop_database(cluster.endpoints.primary, name)
        with connect(cluster.endpoints.primary) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _wait_for(requests: list[Request], enough: Callable[[list[Request]], bool]) -> None:
    """Until the requests so far are ``enough``: the clients run in threads of their own."""
    deadline = time.monotonic() + 10
    while not enough(list(requests)):
        if time.monotonic() > deadline:
            pytest.fail(f"not within 10 sec; the last requests: {list(requests)[-3:]}")
        time.sleep(0.05)


def _refused(r: Request) -> bool:
    return r.message.startswith("reconnecting failed")


def test_every_refused_reconnect_is_a_failed_request(direct: tuple[Endpoints, str]) -> None:
    endpoints, role = direct
    workload = Workload(
        queries=(WorkloadQuery("count_t", role, "read", 1, ("SELECT count(*) FROM t",)),),
        clients=2,
        think_time=0.01,
    )
    logins = Logins(endpoints=endpoints, admin=endpoints.primary, passwords={role: "unused"})
    # The harness's servers trust loopback: the password is not what lets the role in.
    traffic = Traffic(workload, logins, {"count_t": [{}]}, clients=2)
    traffic.start()
    try:
        _wait_for(traffic.requests, lambda rs: any(r.ok for r in rs))
        with connect(endpoints.primary) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
        # Each client tries again every 0.1 sec or so: several refusals each.
        _wait_for(traffic.requests, lambda rs: sum(map(_refused, rs)) >= 6)
    finally:
        traffic.stop()
    failed = [r for r in traffic.requests if _refused(r)]
    # Both clients keep trying, and every try is on record.
    assert {r.client for r in failed} == {0, 1}
    assert all(f'role "{role}" is not permitted to log in' in r.message for r in failed)
    check = check_no_errors(list(traffic.requests), traffic.timeline)
    assert check.verdict == "fail"
    assert any(
        f"count_t as {role} via PgBouncer reader: {len(failed)} failed" in d
        and "reconnecting failed" in d
        for d in check.details
    ), check.details
