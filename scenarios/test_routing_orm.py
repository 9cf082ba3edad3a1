"""SQLAlchemy on the router: the retailer's models, tenants as schemas, reads on the replica.

The legacy database has every table in ``public``; the models name the plan's
target schemas, and a translate map points them back at ``public`` (or at a
new tenant's schema) with no change to the models.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from psycopg import sql
from sqlalchemy import QueuePool, func, select, text, update

from harness.cluster import Cluster
from harness.legacy.application import LEGACY_LAYOUT
from harness.legacy.models import Customer, Order, Product, orm_routing
from harness.routing import Database, InvalidIdentifier, ReplicaPolicy
from harness.routing.orm import OrmRouting
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

ON_REPLICA = select(func.pg_is_in_recovery())
TENANT_TABLES = ("customers", "orders", "order_items", "appointments", "measurements")


def email() -> str:
    return f"orm-{time.time_ns()}@example.com"


@pytest.fixture
def orm(legacy_database: LegacyDatabase) -> Iterator[OrmRouting]:
    eps = legacy_database.endpoints
    policy = ReplicaPolicy(read_your_writes_wait=10.0, check_interval=0.05)
    with Database(eps.writer, eps.reader, replica=policy) as db:
        routing = orm_routing(db, schemas=LEGACY_LAYOUT)
        try:
            yield routing
        finally:
            routing.dispose()


def test_reads_on_the_replica_writes_and_flushed_reads_on_the_writer(orm: OrmRouting) -> None:
    address = email()
    with orm.session() as session:
        assert session.execute(ON_REPLICA).scalar() is True
        assert session.scalar(select(func.count()).select_from(Product)) == 37
        customer = Customer(email=address, first_name="Orm")
        session.add(customer)
        session.flush()  # now the rows exist only in the writer's transaction
        assert customer.id.startswith("c")  # cuid() from the server, read back
        assert session.execute(ON_REPLICA).scalar() is False
        session.add(
            Order(customer_id=customer.id, status="paid", subtotal=Decimal("10.00"),
                  total=Decimal("10.00"), placed_at=datetime.now(UTC))
        )  # fmt: skip
        session.commit()
        assert session.read_token.lsn is not None
        # after the commit: back on the replica, which has replayed the token
        row = session.execute(
            select(func.pg_is_in_recovery(), func.count())
            .select_from(Order)
            .where(Order.customer_id == customer.id)
        ).one()
        assert tuple(row) == (True, 1)


def test_statements_whose_intent_is_hidden_go_to_the_writer(orm: OrmRouting) -> None:
    with orm.session() as session:
        assert session.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
    with orm.session() as session:
        locked = session.execute(
            select(func.pg_is_in_recovery()).select_from(Product).limit(1).with_for_update()
        )
        assert locked.scalar() is False
    with orm.session() as session:
        session.execute(update(Product).where(Product.slug == "no-such-slug").values(name="x"))
        assert session.execute(ON_REPLICA).scalar() is False  # same transaction as the write
        session.rollback()
        assert session.execute(ON_REPLICA).scalar() is True


def test_read_your_writes_in_a_session_while_replay_is_paused(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    policy = ReplicaPolicy(read_your_writes_wait=0.3, max_lag_seconds=3600, check_interval=0.05)
    address = email()
    count = select(func.count()).select_from(Customer).where(Customer.email == address)
    with Database(eps.writer, eps.reader, replica=policy) as db, connect(eps.replica) as replica:
        orm = orm_routing(db, schemas=LEGACY_LAYOUT)
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            with orm.session() as writer_session:
                writer_session.add(Customer(email=address, first_name="Paused"))
                writer_session.commit()
                assert writer_session.scalar(count) == 1  # served by the writer
                assert writer_session.execute(ON_REPLICA).scalar() is False
            with orm.session() as other_session:  # no token: the paused replica, stale
                assert other_session.scalar(count) == 0
                assert other_session.execute(ON_REPLICA).scalar() is True
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
            orm.dispose()


def test_a_new_tenant_is_a_new_schema_and_no_code_change(
    cluster: Cluster, legacy_database: LegacyDatabase, orm: OrmRouting
) -> None:
    with connect(legacy_database.endpoints.primary) as admin:
        admin.execute("CREATE SCHEMA t_new")
        for table in TENANT_TABLES:
            admin.execute(
                sql.SQL("CREATE TABLE t_new.{} (LIKE public.{} INCLUDING ALL)").format(
                    sql.Identifier(table), sql.Identifier(table)
                )
            )
    cluster.wait_for_replica()
    address = email()
    with orm.session(tenant="t_new") as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
        assert session.scalar(select(func.count()).select_from(Product)) == 37  # shared
        session.add(Customer(email=address, first_name="Tenant"))
        session.commit()
        found = session.execute(
            select(func.pg_is_in_recovery(), Customer.first_name).where(Customer.email == address)
        ).one()
        assert tuple(found) == (True, "Tenant")
    with connect(legacy_database.endpoints.primary) as admin:
        placed = admin.execute(
            "SELECT (SELECT count(*) FROM t_new.customers WHERE email = %s),"
            " (SELECT count(*) FROM public.customers WHERE email = %s)",
            (address, address),
        ).fetchone()
    assert placed == (1, 0)


@pytest.mark.parametrize(
    "tenant", ["t_new; DROP TABLE customers", "T_New", "pg_catalog", 'x"y', "tenant-2"]
)
def test_a_tenant_name_that_is_not_an_identifier_is_rejected_before_any_sql(
    orm: OrmRouting, tenant: str
) -> None:
    pools = [orm.writer_engine.pool, orm.reader_engine.pool]
    with pytest.raises(InvalidIdentifier, match="tenant schema name"):
        orm.session(tenant=tenant)
    for pool in pools:
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() + pool.checkedout() == 0  # not one connection was opened
