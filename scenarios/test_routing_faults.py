"""Bad input and refusals, on real servers: each fails clearly, with the right kind, no secrets.

An unreachable reader is survived (writer alone, one warning); an unreachable
writer is a clear error; an exhausted pool is a typed error with its stats;
PgBouncer's and PostgreSQL's refusals are told apart; a read-only role cannot
write through any path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace

import psycopg
import psycopg_pool
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from harness.cluster import Cluster
from harness.cluster.processes import free_port
from harness.routing import (
    WRITER_POOL,
    Database,
    ErrorKind,
    PoolExhausted,
    ReplicaPolicy,
    WriterUnavailable,
    classify,
)
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

Conn = psycopg.Connection[tuple[object, ...]]
SECRET = "s3cr3t-Pa55"
QUICK = ReplicaPolicy(check_interval=0.05, retry_min=0.02, retry_max=0.05)


def as_user(dsn: str, user: str) -> str:
    return make_conninfo(dsn, user=user)


def test_unreachable_reader_at_start_serves_from_the_writer_and_warns_once(
    legacy_database: LegacyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader = f"postgresql://kct_readonly:{SECRET}@127.0.0.1:{free_port()}/{legacy_database.name}"
    with Database(legacy_database.endpoints.writer, reader, replica=QUICK) as db:
        assert db.fetchone("SELECT pg_is_in_recovery()") == (False,)
        with db.reader() as conn:
            assert conn.execute("SELECT count(*) FROM products").fetchone() == (37,)
        # let the monitor fail several more probes: still a single warning
        deadline = time.monotonic() + 10
        while (state := db.replica_state()) is not None and state.checks < 5:
            assert time.monotonic() < deadline, "the monitor stopped probing"
            time.sleep(0.02)
        assert state is not None
        assert not state.available
        assert state.failures >= 5
        assert db.health_check() == {"write": True, "read": False}
        assert db.stats()["fallbacks"]["replica_down"] == 2
    warnings = [
        r for r in caplog.records if r.name == "harness.routing" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert "unreachable at start" in warnings[0].getMessage()
    assert "kct_readonly:***@127.0.0.1" in warnings[0].getMessage()
    assert SECRET not in caplog.text


def test_a_standby_as_writer_is_refused(legacy_database: LegacyDatabase) -> None:
    with pytest.raises(
        WriterUnavailable, match=r"is a read-only standby \(pg_is_in_recovery\(\) is true\)"
    ):
        Database(legacy_database.endpoints.replica)


def test_an_exhausted_pool_raises_a_typed_error_with_its_stats(
    legacy_database: LegacyDatabase,
) -> None:
    tiny = replace(WRITER_POOL, min_size=1, max_size=1, timeout=0.2)
    with Database(legacy_database.endpoints.writer, writer_pool=tiny) as db, db.writer() as held:
        held.execute("SELECT 1")
        with pytest.raises(PoolExhausted) as info, db.writer():
            pass
    exc = info.value
    assert str(exc).startswith("couldn't get a writer connection after 0.20 sec: 1 of 1 ")
    assert exc.role == "writer"
    assert exc.stats["pool_max"] == 1
    assert exc.stats["pool_available"] == 0
    assert exc.stats["requests_errors"] >= 1
    assert isinstance(exc, psycopg_pool.PoolTimeout)
    assert classify(exc) is ErrorKind.POOL_TIMEOUT
    assert WRITER_POOL.max_size == 10  # the shipped default is untouched


def test_pgbouncer_client_limit_is_a_pooler_refusal(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    if not cluster.pgbouncer_admin:
        pytest.skip(f"the {cluster.provider} provider runs no PgBouncer of its own")
    held: list[Conn] = []
    try:
        with pytest.raises(psycopg.OperationalError) as info:  # noqa: PT012
            for _ in range(300):  # max_client_conn is 100 in the plan's writer config
                held.append(connect(legacy_database.endpoints.writer, prepare_threshold=None))
    finally:
        for conn in held:
            conn.close()
    assert "no more connections allowed (max_client_conn)" in str(info.value)
    assert 0 < len(held) <= 100
    assert classify(info.value) is ErrorKind.POOLER_REFUSED


def test_postgresql_connection_limit_is_a_server_refusal(legacy_database: LegacyDatabase) -> None:
    role = f"routing_limited_{os.getpid()}"
    eps = legacy_database.endpoints
    with connect(eps.primary) as admin:
        # Superusers are exempt from connection limits: a plain role with limit 1.
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1").format(sql.Identifier(role))
        )
        try:
            with (
                connect(as_user(eps.primary, role)),
                pytest.raises(psycopg.OperationalError) as info,
            ):
                connect(as_user(eps.primary, role))
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert "too many connections for role" in str(info.value)
    assert classify(info.value) is ErrorKind.SERVER_REFUSED


WRITES = [
    "INSERT INTO customers (email, first_name) VALUES ('ro@example.com', 'Ro')",
    "UPDATE products SET name = name",
    "DELETE FROM order_items",
    "TRUNCATE measurements",
    "CREATE TABLE public.sneaky (id int)",
    "SELECT setval('orders_order_number_seq', 1)",
]


def _create_kct_readonly(admin: Conn) -> None:
    """The corrected plan's read-only role: LOGIN, SELECT only; cluster-wide, so never dropped."""
    # DuplicateObject: created by someone else between the check and the CREATE
    with contextlib.suppress(psycopg.errors.DuplicateObject):
        admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kct_readonly') "
            "THEN CREATE ROLE kct_readonly LOGIN; END IF; END $$"
        )
    admin.execute("GRANT USAGE ON SCHEMA public TO kct_readonly")
    admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO kct_readonly")


def test_kct_readonly_cannot_write_through_any_path(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    eps = legacy_database.endpoints
    with connect(eps.primary) as admin:
        _create_kct_readonly(admin)
        flags = admin.execute(
            "SELECT rolsuper, rolcanlogin, rolbypassrls FROM pg_roles "
            "WHERE rolname = 'kct_readonly'"
        ).fetchone()
        assert flags == (False, True, False)
    cluster.wait_for_replica()
    cluster.allow_users(["kct_readonly"])
    paths = {"primary": eps.primary, "writer": eps.writer, "reader": eps.reader,
             "replica": eps.replica}  # fmt: skip
    refused: dict[str, set[str]] = {}
    for path, dsn in paths.items():
        with connect(as_user(dsn, "kct_readonly"), prepare_threshold=None) as conn:
            assert conn.execute("SELECT count(*) FROM products").fetchone() == (37,)
            for statement in WRITES:
                with pytest.raises(psycopg.Error) as info:
                    conn.execute(statement)
                refused.setdefault(path, set()).add(type(info.value).__name__)
    for path in ("primary", "writer"):
        assert refused[path] == {"InsufficientPrivilege"}, path
    for path in ("reader", "replica"):  # a standby refuses before privileges are checked
        assert refused[path] <= {"ReadOnlySqlTransaction", "InsufficientPrivilege"}, path
    with Database(as_user(eps.writer, "kct_readonly"), as_user(eps.reader, "kct_readonly")) as db:
        assert db.fetchone("SELECT count(*) FROM customers") == (3369,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.writer() as conn:
            conn.execute(WRITES[0])
    with connect(eps.primary) as admin:
        counts = admin.execute(
            "SELECT (SELECT count(*) FROM customers WHERE email = 'ro@example.com'),"
            " to_regclass('public.sneaky') IS NULL"
        ).fetchone()
    assert counts == (0, True)
