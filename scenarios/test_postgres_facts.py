"""The PostgreSQL 15 behaviour the gate is designed around, shown on the real server.

If a future PostgreSQL changes one of these, this file says which assumption broke
before a gate verdict silently goes wrong.
"""

from __future__ import annotations

import psycopg
import pytest

from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

Conn = psycopg.Connection[tuple[object, ...]]


def test_set_schema_rewrites_nothing_but_locks_everything(
    primary_conn: Conn, legacy_database: LegacyDatabase
) -> None:
    before = primary_conn.execute("SELECT pg_relation_filenode('public.orders')").fetchone()
    primary_conn.execute("CREATE SCHEMA tenant_kct")
    with primary_conn.transaction(force_rollback=True):
        primary_conn.execute("ALTER TABLE public.orders SET SCHEMA tenant_kct")
        after = primary_conn.execute("SELECT pg_relation_filenode('tenant_kct.orders')").fetchone()
        mode = primary_conn.execute(
            "SELECT mode FROM pg_locks WHERE relation = 'tenant_kct.orders'::regclass"
            " AND pid = pg_backend_pid()"
        ).fetchone()
    assert after == before  # same file: no rewrite, however big the table
    assert mode == ("AccessExclusiveLock",)  # reads and writes wait for the whole step


def test_grant_on_all_tables_before_the_move_does_not_follow_the_table(primary_conn: Conn) -> None:
    primary_conn.execute("CREATE SCHEMA tenant_shared")
    primary_conn.execute("DROP ROLE IF EXISTS fact_app")
    primary_conn.execute("CREATE ROLE fact_app")
    try:
        primary_conn.execute("GRANT USAGE ON SCHEMA tenant_shared TO fact_app")
        primary_conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA tenant_shared TO fact_app")
        primary_conn.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared GRANT SELECT ON TABLES TO fact_app"
        )
        primary_conn.execute("ALTER TABLE public.products SET SCHEMA tenant_shared")
        with primary_conn.transaction(force_rollback=True):
            primary_conn.execute("SET LOCAL ROLE fact_app")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                primary_conn.execute("SELECT 1 FROM tenant_shared.products LIMIT 1")
    finally:
        primary_conn.execute("DROP OWNED BY fact_app")
        primary_conn.execute("DROP ROLE fact_app")


def test_database_search_path_reaches_only_new_sessions(
    primary_conn: Conn, legacy_database: LegacyDatabase, legacy_counts: dict[str, int]
) -> None:
    with connect(legacy_database.endpoints.primary) as old:
        primary_conn.execute("CREATE SCHEMA tenant_shared")
        primary_conn.execute("ALTER TABLE public.products SET SCHEMA tenant_shared")
        primary_conn.execute(
            f'ALTER DATABASE "{legacy_database.name}" SET search_path = public, tenant_shared'
        )
        with pytest.raises(psycopg.errors.UndefinedTable):
            old.execute("SELECT count(*) FROM products")
        with connect(legacy_database.endpoints.primary) as new:
            count = new.execute("SELECT count(*) FROM products").fetchone()
            assert count == (legacy_counts["products"],)


def test_text_bodies_break_views_follow(primary_conn: Conn, legacy_counts: dict[str, int]) -> None:
    primary_conn.execute("CREATE SCHEMA tenant_kct")
    customer = primary_conn.execute("SELECT id FROM customers ORDER BY id LIMIT 1").fetchone()
    assert customer is not None
    primary_conn.execute("ALTER TABLE public.orders SET SCHEMA tenant_kct")
    # The view was bound to the table's OID when it was created.
    assert primary_conn.execute("SELECT count(*) FROM order_summaries").fetchone() == (
        legacy_counts["orders"],
    )
    # The PL/pgSQL body is parsed at call time, under this session's search_path.
    with pytest.raises(psycopg.errors.UndefinedTable):
        primary_conn.execute("SELECT customer_lifetime_value(%s)", customer)


def test_a_compatibility_view_keeps_old_sessions_working(
    primary_conn: Conn, legacy_database: LegacyDatabase, legacy_counts: dict[str, int]
) -> None:
    with connect(legacy_database.endpoints.primary) as old:
        primary_conn.execute("CREATE SCHEMA tenant_kct")
        with primary_conn.transaction():
            primary_conn.execute("ALTER TABLE public.measurements SET SCHEMA tenant_kct")
            primary_conn.execute(
                "CREATE VIEW public.measurements AS SELECT * FROM tenant_kct.measurements"
            )
        assert old.execute("SELECT count(*) FROM measurements").fetchone() == (
            legacy_counts["measurements"],
        )
        # Simple views are updatable, and the table's own defaults fill what is left out.
        row = old.execute(
            "INSERT INTO measurements (customer_id, taken_at)"
            " SELECT id, now() FROM customers LIMIT 1 RETURNING id"
        ).fetchone()
    assert row is not None
    assert primary_conn.execute(
        "SELECT count(*) FROM tenant_kct.measurements WHERE id = %s", row
    ).fetchone() == (1,)
