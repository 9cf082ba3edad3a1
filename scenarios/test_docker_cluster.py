"""The docker provider for real: a streaming replica, and PgBouncer pools in the plan's modes.

Skipped, with the reason, only when no Docker engine answers; in CI too, since a
runner without Docker is the documented exception. Anything else that goes wrong
once an engine answers is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from harness.cluster.docker import DockerCluster, docker_available, start_docker_cluster

pytestmark = pytest.mark.docker

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(scope="module")
def docker_cluster() -> Iterator[DockerCluster]:
    """One docker cluster for this module; its containers and network go at the end."""
    reason = docker_available()
    if reason is not None:
        pytest.skip(reason)
    with start_docker_cluster() as cluster:
        assert isinstance(cluster, DockerCluster)
        yield cluster


def _connect(dsn: str) -> Conn:
    # prepare_threshold=None: the writer pools by transaction, and the admin console
    # speaks only the simple query protocol.
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5, prepare_threshold=None)


def test_replica_is_streaming_and_read_only(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.replica) as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert replica.execute("SELECT status FROM pg_stat_wal_receiver").fetchone() == (
            "streaming",
        )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("CREATE TABLE must_fail (id int)")
    with _connect(eps.primary) as primary:
        assert primary.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        states = primary.execute("SELECT state FROM pg_stat_replication").fetchall()
        assert states == [("streaming",)]


def test_primary_write_reaches_replica_after_wait(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.primary) as primary:
        primary.execute("CREATE TABLE docker_marker (v text)")
        primary.execute("INSERT INTO docker_marker VALUES ('written on the primary')")
    docker_cluster.wait_for_replica()
    with _connect(eps.replica) as replica:
        rows = replica.execute("SELECT v FROM docker_marker").fetchall()
    assert rows == [("written on the primary",)]


def test_reader_reaches_the_replica_and_writer_the_primary(
    docker_cluster: DockerCluster,
) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.writer) as writer, _connect(eps.reader) as reader:
        assert writer.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert reader.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_pgbouncer_pools_have_the_plans_modes(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    dbname = docker_cluster.plan.dbname
    modes: dict[str, set[object]] = {}
    # A pool exists once a client has used it: hold one connection through each role.
    with _connect(eps.writer) as writer, _connect(eps.reader) as reader:
        writer.execute("SELECT 1")
        reader.execute("SELECT 1")
        for role, admin_dsn in docker_cluster.pgbouncer_admin.items():
            with _connect(admin_dsn) as admin:
                cur = admin.execute("SHOW POOLS")
                cols = [c.name for c in cur.description or ()]
                assert "pool_mode" in cols, f"{role} PgBouncer is older than 1.18: {cols}"
                pools = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            modes[role] = {p["pool_mode"] for p in pools if p["database"] == dbname}
    assert modes == {"writer": {"transaction"}, "reader": {"session"}}
