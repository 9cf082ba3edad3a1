"""The ground every other scenario stands on: replication, pooling, teardown."""

from __future__ import annotations

import os

import psycopg
import pytest

from harness.cluster import Cluster
from harness.cluster.local import LocalCluster, start_local_cluster
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

Conn = psycopg.Connection[tuple[object, ...]]


def test_replica_is_streaming_and_read_only(cluster: Cluster, replica_conn: Conn) -> None:
    assert replica_conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    status = replica_conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    assert status == ("streaming",)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        replica_conn.execute("CREATE TABLE must_fail (id int)")


def test_primary_write_reaches_replica_after_wait(
    cluster: Cluster, primary_conn: Conn, replica_conn: Conn
) -> None:
    primary_conn.execute("CREATE TABLE marker (v text)")
    primary_conn.execute("INSERT INTO marker VALUES ('written on the primary')")
    cluster.wait_for_replica()
    assert replica_conn.execute("SELECT v FROM marker").fetchall() == [("written on the primary",)]


def test_replica_is_caught_up_at_once_after_a_wal_switch(
    cluster: Cluster, primary_conn: Conn
) -> None:
    """A base backup ends with a WAL switch; the position then points past the new page's
    header, which no record ends at, and used to be waited for until the next record."""
    primary_conn.execute("CREATE TEMP TABLE before_the_switch (v int)")
    primary_conn.execute("SELECT pg_switch_wal()")
    cluster.wait_for_replica(timeout=5)


def test_legacy_counts_are_the_plans(
    primary_conn: Conn, replica_conn: Conn, legacy_counts: dict[str, int]
) -> None:
    query = (
        "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM product_variants),"
        " (SELECT count(*) FROM customers)"
    )
    scale = legacy_counts["products"] // 37
    # "37 products, 544 variants, 3,369 customers", times the session's --pg-scale.
    assert (37 * scale, 544 * scale, 3369 * scale) == (
        legacy_counts["products"],
        legacy_counts["product_variants"],
        legacy_counts["customers"],
    )
    assert primary_conn.execute(query).fetchone() == (37 * scale, 544 * scale, 3369 * scale)
    assert replica_conn.execute(query).fetchone() == (37 * scale, 544 * scale, 3369 * scale)


def test_pgbouncer_pools_have_the_configured_modes(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    if not cluster.pgbouncer_admin:
        pytest.skip(f"the {cluster.provider} provider runs no PgBouncer of its own")
    # Open one connection through each role so that its pool exists.
    for dsn in (legacy_database.endpoints.writer, legacy_database.endpoints.reader):
        with connect(dsn, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
    modes = {}
    for role, admin in cluster.pgbouncer_admin.items():
        with connect(admin) as conn:
            cur = conn.execute("SHOW POOLS")
            cols = [c.name for c in cur.description or ()]
            for row in cur.fetchall():
                rec = dict(zip(cols, row, strict=True))
                if rec["database"] == legacy_database.name:
                    modes[role] = rec["pool_mode"]
    assert modes == {"writer": "transaction", "reader": "session"}


def test_reader_pool_reaches_the_replica(legacy_database: LegacyDatabase) -> None:
    with connect(legacy_database.endpoints.reader) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    with connect(legacy_database.endpoints.writer, prepare_threshold=None) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_teardown_leaves_no_process_or_directory(cluster: Cluster) -> None:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("process-level teardown is the local provider's")
    own = start_local_cluster()
    pids = [p.pid for p in own._processes()]
    assert len(pids) == 4
    assert all(_alive(pid) for pid in pids)
    own.stop()
    assert [pid for pid in pids if _alive(pid)] == []
    assert not own.workdir.exists()
    # The session's cluster is untouched by another cluster's teardown.
    with connect(cluster.endpoints.primary) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
