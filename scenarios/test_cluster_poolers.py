"""A plan's ``[pgbouncer]`` settings are the ones its cluster runs, and its roles get through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest

from harness.cluster.local import LocalCluster
from harness.cluster.pooling import Poolers, PoolSettings
from harness.dsn import make_dsn
from harness.testing.fix_cluster import connect, own_local_cluster

# Unlike the defaults in every key that is checked: modes swapped, small pools. The
# writer's session pool holds as many server connections as it admits clients, so
# none of them queues for one.
POOLERS = Poolers(
    writer=PoolSettings(
        role="writer",
        pool_mode="session",
        max_client_conn=3,
        default_pool_size=3,
        reserve_pool_size=0,
        reserve_pool_timeout=2,
        server_lifetime=120,
        server_idle_timeout=60,
    ),
    reader=PoolSettings(
        role="reader",
        pool_mode="transaction",
        max_client_conn=40,
        default_pool_size=4,
        reserve_pool_size=1,
        reserve_pool_timeout=3,
        server_lifetime=240,
        server_idle_timeout=11,
    ),
)


@pytest.fixture(scope="module")
def pooled() -> Iterator[LocalCluster]:
    with own_local_cluster(dbname="pools", poolers=POOLERS) as cluster:
        yield cluster


def _as(port: int, user: str) -> str:
    return make_dsn(host="127.0.0.1", port=port, user=user, dbname="pools")


def _config(admin: str) -> dict[str, str]:
    with connect(admin, prepare_threshold=None) as conn:
        return {str(row[0]): str(row[1]) for row in conn.execute("SHOW CONFIG").fetchall()}


def test_pgbouncers_and_servers_run_with_the_plans_numbers(pooled: LocalCluster) -> None:
    for settings in POOLERS.both:
        config = _config(pooled.pgbouncer_admin[settings.role])
        assert {k: config[k] for k in ("pool_mode", "max_client_conn", "default_pool_size",
                                       "reserve_pool_size", "server_idle_timeout")} == {
            "pool_mode": settings.pool_mode,
            "max_client_conn": str(settings.max_client_conn),
            "default_pool_size": str(settings.default_pool_size),
            "reserve_pool_size": str(settings.reserve_pool_size),
            "server_idle_timeout": str(settings.server_idle_timeout),
        }  # fmt: skip
    # The reader's 4 pools of 5 outnumber the writer's 3 clients; both servers get it.
    assert POOLERS.max_connections == 4 * 5 + 100
    for dsn in (pooled.endpoints.primary, pooled.endpoints.replica):
        with connect(dsn) as conn:
            row = conn.execute("SELECT current_setting('max_connections')").fetchone()
        assert row == (str(POOLERS.max_connections),)


def test_the_writer_admits_only_max_client_conn_clients(pooled: LocalCluster) -> None:
    with ExitStack() as stack:
        for _ in range(POOLERS.writer.max_client_conn):
            conn = stack.enter_context(connect(pooled.endpoints.writer, prepare_threshold=None))
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="max_client_conn"):
            connect(pooled.endpoints.writer, prepare_threshold=None).close()


def test_allow_users_lets_a_new_role_through_both_poolers(pooled: LocalCluster) -> None:
    with connect(pooled.endpoints.primary) as conn:
        conn.execute("CREATE ROLE pool_app LOGIN")
    pooled.wait_for_replica()
    ports = [bouncer.port for bouncer in pooled.bouncers.values()]
    for port in ports:
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            connect(_as(port, "pool_app"), prepare_threshold=None).close()
    pooled.allow_users(["pool_app"])
    for port in ports:
        with connect(_as(port, "pool_app"), prepare_threshold=None) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("pool_app",)
