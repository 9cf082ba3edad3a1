"""The two ways session state betrays an application behind PgBouncer in transaction pooling.

Each hazard is first made to happen, with the safeguard removed, then shown not
to happen with it. The demonstrations rely on PgBouncer 1.18 reusing the most
recently released server connection first (``server_round_robin = 0``, the
default): two clients taking turns on a quiet pool share one server
connection, which the tests check by its backend pid.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from harness.cluster import Cluster
from harness.routing import Database
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

Conn = psycopg.Connection[tuple[object, ...]]
PEEK = "SELECT pg_backend_pid(), current_setting('search_path'), (SELECT count(*) FROM products)"


@pytest.fixture
def writer_dsn(cluster: Cluster, legacy_database: LegacyDatabase) -> str:
    """The writer's PgBouncer DSN, with a rival tenant's ``products`` in schema t_leak."""
    if not cluster.pgbouncer_admin:
        pytest.skip(f"the {cluster.provider} provider runs no PgBouncer of its own")
    with connect(legacy_database.endpoints.primary) as admin:
        admin.execute("CREATE SCHEMA t_leak")
        admin.execute("CREATE TABLE t_leak.products (LIKE public.products INCLUDING ALL)")
        admin.execute(
            "INSERT INTO t_leak.products (name, slug, category, base_price) "
            "VALUES ('another tenant''s product', 'leak', 'suits', 1)"
        )
    return legacy_database.endpoints.writer


def test_plain_set_search_path_leaks_to_the_next_client(writer_dsn: str) -> None:
    with (
        connect(writer_dsn, prepare_threshold=None) as tenant_a,
        connect(writer_dsn, prepare_threshold=None) as tenant_b,
    ):
        tenant_a.execute("SET search_path TO t_leak")  # its own transaction (autocommit)
        row = tenant_a.execute(PEEK).fetchone()
        assert row is not None
        assert row[1:] == ("t_leak", 1)
        # tenant B never touched search_path, yet it resolves products in t_leak:
        assert tenant_b.execute(PEEK).fetchone() == (row[0], "t_leak", 1)


def test_set_local_search_path_ends_with_the_transaction(writer_dsn: str) -> None:
    with (
        Database(writer_dsn) as db,
        connect(writer_dsn, prepare_threshold=None) as tenant_b,
    ):
        with db.writer(search_path=["t_leak"]) as conn:
            row = conn.execute(PEEK).fetchone()
        assert row is not None
        assert row[1:] == ("t_leak", 1)
        # same server connection, next client: the default path and the real catalog
        assert tenant_b.execute(PEEK).fetchone() == (row[0], '"$user", public', 37)


def test_automatic_prepare_breaks_through_transaction_pooling(writer_dsn: str) -> None:
    # prepare_threshold=0: psycopg prepares every statement as _pg3_0, _pg3_1, ...
    # on whichever server PgBouncer lends for that transaction, and then trusts it.
    with (
        connect(writer_dsn, prepare_threshold=0) as first,
        connect(writer_dsn, prepare_threshold=0) as second,
        connect(writer_dsn, prepare_threshold=None) as holder,
    ):
        assert first.execute("SELECT 1").fetchone() == (1,)  # _pg3_0 on server S1
        # second client, same server S1, its own counter: its _pg3_0 is already there
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute("SELECT 2")
        with holder.transaction():  # holds S1, so the next client gets another server
            holder.execute("SELECT 1")
            with pytest.raises(psycopg.errors.InvalidSqlStatementName, match="does not exist"):
                first.execute("SELECT 1")  # psycopg sends EXECUTE _pg3_0 to S2


def test_without_automatic_prepare_the_same_moves_are_safe(writer_dsn: str) -> None:
    with (
        connect(writer_dsn, prepare_threshold=None) as first,
        connect(writer_dsn, prepare_threshold=None) as second,
        connect(writer_dsn, prepare_threshold=None) as holder,
    ):
        assert first.execute("SELECT 1").fetchone() == (1,)
        assert second.execute("SELECT 2").fetchone() == (2,)
        with holder.transaction():
            holder.execute("SELECT 1")
            for _ in range(10):  # psycopg's default threshold (5) would have prepared it
                assert first.execute("SELECT 1").fetchone() == (1,)


def test_the_router_runs_repeated_queries_from_many_threads_through_the_writer_bouncer(
    writer_dsn: str,
) -> None:
    errors: list[BaseException] = []
    done: list[int] = []

    def client(n: int) -> None:
        try:
            with Database(writer_dsn) as db:
                for i in range(30):
                    with db.writer() as conn:  # 30 runs: far past any prepare threshold
                        row = conn.execute("SELECT %s::int + %s::int", (n, i)).fetchone()
                        assert row == (n + i,)
                    assert db.fetchone("SELECT count(*) FROM products WHERE id <> %s", (str(i),))
            done.append(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(done) == list(range(6))
