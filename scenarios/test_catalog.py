"""Fingerprints of a real database: stable, sensitive to each kind of change, equal for a copy.

Each test builds a small shop in the fresh database ``empty_dsn`` names, takes a
fingerprint, changes one thing, and checks the diff says exactly that thing.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from harness.catalog import (
    IGNORE_DATABASE,
    IGNORE_SEQUENCE_VALUES,
    Fingerprint,
    diff,
    fingerprint,
    same,
    table_checksum,
)
from harness.cluster import Cluster
from harness.cluster.binaries import find_binaries
from harness.dsn import database_of, with_database
from harness.errors import UsageError

SHOP = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE suppliers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (
    id serial PRIMARY KEY, email text UNIQUE, mood mood, score numeric(6, 2),
    seen_at timestamptz DEFAULT now(), tags text[], extra jsonb
);
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int REFERENCES customers (id), total numeric(10, 2) CHECK (total >= 0)
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_orders ON orders USING (customer_id > 0);
INSERT INTO suppliers (name) VALUES ('Loro Piana'), ('Zegna');
INSERT INTO customers (email, mood, score, tags, extra) VALUES
    ('a@kct.com', 'ok', 1.50, '{vip}', '{"size": 40}'),
    ('b@kct.com', 'happy', 2.25, '{}', NULL),
    ('c@kct.com', NULL, NULL, NULL, '{"size": 42.0}');
INSERT INTO orders (customer_id, total) VALUES (1, 120.00), (2, 80.50), (1, 99.99);
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) FROM orders GROUP BY 1;
"""


@pytest.fixture
def shop_conn(empty_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(SHOP)
        yield conn


@pytest.fixture
def role(empty_dsn: str) -> Iterator[str]:
    """A role of our own; roles are cluster-wide, so the name is unique to this test."""
    name = f"kct_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


@pytest.fixture
def spare_dsn(empty_dsn: str, role: str) -> Iterator[str]:
    """A second empty database with the same encoding and locale, to restore into.

    Asks for ``role`` so the copy, which holds grants to it, is dropped first.
    """
    name = f"{database_of(empty_dsn)}_copy"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        enc, collate, ctype = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database"
            " WHERE datname = current_database()"
        ).fetchone() or ("", "", "")
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
            ).format(
                sql.Identifier(name), sql.Literal(enc), sql.Literal(collate), sql.Literal(ctype)
            )
        )
    yield with_database(empty_dsn, name)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def changes(conn: psycopg.Connection[Any], before: Fingerprint) -> list[str]:
    return [str(d) for d in diff(before, fingerprint(conn))]


def copy_database(source: str, target: str, *, dump: Path) -> None:
    """Dump and restore by DSNs as the fixtures give them.

    Not ``conn.info.dsn``: psycopg's bundled libpq may be newer than the server's
    client programs and adds options to it (``sslcertmode``, libpq 16) that
    pg_dump 15 rejects as "invalid connection option".
    """
    binaries = find_binaries()
    subprocess.run(
        [binaries.path("pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={source}"],
        check=True,
    )
    subprocess.run(
        [binaries.path("pg_restore"), "--exit-on-error", f"--dbname={target}", str(dump)],
        check=True,
    )


def test_fingerprint_is_stable_across_reads(shop_conn: psycopg.Connection[Any]) -> None:
    first, second = fingerprint(shop_conn), fingerprint(shop_conn)
    assert first == second
    assert diff(first, second) == []
    assert Fingerprint.from_json(first.to_json()) == first
    assert first.row_count("public.orders") == 3
    assert first.row_count("public.order_totals") == 2
    assert set(first.views) == {"public.big_orders", "public.order_totals"}
    assert [t.definition for t in first.types.values()] == [("sad", "ok", "happy")]


def test_fingerprint_leaves_the_session_as_it_was(shop_conn: psycopg.Connection[Any]) -> None:
    shop_conn.execute("SET search_path = public, pg_temp")
    fingerprint(shop_conn)
    assert shop_conn.execute("SHOW search_path").fetchone() == ("public, pg_temp",)
    shop_conn.autocommit = False
    shop_conn.execute("SELECT 1")
    with pytest.raises(UsageError, match="idle connection"):
        fingerprint(shop_conn)
    shop_conn.rollback()


def test_table_moved_to_another_schema(shop_conn: psycopg.Connection[Any]) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute("CREATE SCHEMA tenant_shared; ALTER TABLE suppliers SET SCHEMA tenant_shared")
    after = fingerprint(shop_conn)
    found = [str(d) for d in diff(before, after)]
    assert "`public.suppliers`: expected in public, found in tenant_shared" in found
    # Its serial sequence moves with it (ALTER TABLE ... SET SCHEMA takes owned sequences).
    assert "`public.suppliers_id_seq`: expected in public, found in tenant_shared" in found
    assert not [m for m in found if "rows" in m or "checksum" in m]
    assert after.table_schema("suppliers") == ["tenant_shared"]


def test_updating_one_value_changes_the_checksum_not_the_count(
    shop_conn: psycopg.Connection[Any],
) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute("UPDATE customers SET email = 'b@kct.co' WHERE id = 2")
    assert changes(shop_conn, before) == [
        "`public.customers`: same 3 rows counted but contents differ (checksum)"
    ]


def test_deleted_row_changes_the_count(shop_conn: psycopg.Connection[Any]) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute("DELETE FROM orders WHERE id = 3")
    assert changes(shop_conn, before) == ["`public.orders`: 3 rows expected, 2 found"]


def test_grant_shows_as_a_privilege_difference(
    shop_conn: psycopg.Connection[Any], role: str
) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute(sql.SQL("GRANT SELECT, INSERT ON orders TO {}").format(sql.Identifier(role)))
    assert changes(shop_conn, before) == [
        f"`public.orders`: privileges differ: {role} gained SELECT, INSERT"
    ]


def test_database_search_path_shows(shop_conn: psycopg.Connection[Any]) -> None:
    before = fingerprint(shop_conn)
    database = sql.Identifier(shop_conn.info.dbname)
    shop_conn.execute(
        sql.SQL("ALTER DATABASE {} SET search_path = public, tenant_shared").format(database)
    )
    assert changes(shop_conn, before) == [
        "database setting search_path: expected <unset>, found 'public, tenant_shared'"
    ]


def test_setval_shows(shop_conn: psycopg.Connection[Any]) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute("SELECT setval('suppliers_id_seq', 1, false)")
    assert changes(shop_conn, before) == [
        "`public.suppliers_id_seq`: last value 2 expected, 1 found (reset)"
    ]


def test_restored_copy_fingerprints_equal(
    shop_conn: psycopg.Connection[Any], empty_dsn: str, role: str, spare_dsn: str, tmp_path: Path
) -> None:
    shop_conn.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(role)))
    # pg_restore refreshes materialized views: a stale one would differ, rightly.
    shop_conn.execute("REFRESH MATERIALIZED VIEW order_totals")
    copy_database(empty_dsn, spare_dsn, dump=tmp_path / "shop.dump")
    with psycopg.connect(spare_dsn) as copy:
        assert diff(fingerprint(shop_conn), fingerprint(copy)) == []


def test_plain_dump_leaves_database_settings_behind(
    shop_conn: psycopg.Connection[Any], empty_dsn: str, spare_dsn: str, tmp_path: Path
) -> None:
    """pg_dump without --create carries no ALTER DATABASE ... SET (PostgreSQL >= 11)."""
    database = sql.Identifier(shop_conn.info.dbname)
    shop_conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = public, audit").format(database))
    copy_database(empty_dsn, spare_dsn, dump=tmp_path / "shop.dump")
    with psycopg.connect(spare_dsn) as copy:
        original, restored = fingerprint(shop_conn), fingerprint(copy)
    assert [str(d) for d in diff(original, restored)] == [
        "database setting search_path: expected 'public, audit', found <unset>"
    ]
    assert same(original, restored, ignore=[IGNORE_DATABASE])


@pytest.mark.parametrize(
    ("column", "rows", "change"),
    [
        (
            "a int, b text",
            "(1, 'x'), (2, 'y')",
            "UPDATE probe SET b = CASE b WHEN 'x' THEN 'y' ELSE 'x' END",
        ),
        ("a int", "(1), (2)", "UPDATE probe SET a = 1"),  # a duplicate replaces a row
        ("a text", "(''), ('x')", "UPDATE probe SET a = NULL WHERE a = ''"),
        ("a numeric", "(1.0), (2)", "UPDATE probe SET a = 1.00 WHERE a = 1"),  # equal, not same
        ("a float8", "(0), (2)", "UPDATE probe SET a = '-0' WHERE a = 0"),
        (
            "a interval",
            "('1 day'), ('1 hour')",
            "UPDATE probe SET a = '24 hours' WHERE a = '1 day'",
        ),
        (
            "a jsonb",
            "('{\"k\": 1.0}'), ('[]')",
            "UPDATE probe SET a = '{\"k\": 1.00}' WHERE a ? 'k'",
        ),
        ("a timestamptz", "(now()), ('epoch')", "UPDATE probe SET a = a + '1 microsecond'"),
        (
            "t int",
            "(1), (2)",
            "UPDATE probe SET t = 3 WHERE t = 2",
        ),  # a column named like the alias
        ("a mood", "('sad'), ('ok')", "UPDATE probe SET a = 'happy' WHERE a = 'ok'"),
    ],
)
def test_checksum_sees_changes_that_keep_the_count(
    shop_conn: psycopg.Connection[Any], column: str, rows: str, change: str
) -> None:
    shop_conn.execute(
        sql.SQL("CREATE TABLE probe ({}); INSERT INTO probe VALUES {}").format(
            sql.SQL(column), sql.SQL(rows)
        )
    )
    before = fingerprint(shop_conn)
    shop_conn.execute(change)
    assert changes(shop_conn, before) == [
        "`public.probe`: same 2 rows counted but contents differ (checksum)"
    ]


def test_checksum_sees_case_under_a_case_insensitive_collation(
    shop_conn: psycopg.Connection[Any],
) -> None:
    try:
        shop_conn.execute(
            "CREATE COLLATION ci"
            " (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
        )
    except psycopg.errors.FeatureNotSupported:
        pytest.skip("this server was built without ICU")
    shop_conn.execute("CREATE TABLE probe (a text COLLATE ci); INSERT INTO probe VALUES ('abc')")
    before = fingerprint(shop_conn)
    shop_conn.execute("UPDATE probe SET a = 'ABC'")
    assert changes(shop_conn, before) == [
        "`public.probe`: same 1 row counted but contents differ (checksum)"
    ]


def test_standby_equals_primary_but_for_sequence_values(
    shop_conn: psycopg.Connection[Any], empty_dsn: str, cluster: Cluster
) -> None:
    """A hot standby reads sequences up to 32 ahead; unlogged tables have no data there."""
    if not cluster.has_streaming_replica:
        pytest.skip("this cluster has no streaming replica")
    shop_conn.execute("CREATE UNLOGGED TABLE scratch (id int); INSERT INTO scratch VALUES (1)")
    shop_conn.execute("INSERT INTO suppliers (name) VALUES ('Canali')")
    cluster.wait_for_replica()
    replica_dsn = cluster.endpoints.for_database(database_of(empty_dsn)).replica
    with psycopg.connect(replica_dsn, autocommit=True) as standby:
        primary, mirrored = fingerprint(shop_conn), fingerprint(standby)
    assert mirrored.row_count("public.scratch") is None
    assert mirrored.row_count("public.suppliers") == 3
    assert same(primary, mirrored, ignore=[IGNORE_SEQUENCE_VALUES])
    assert {d.kind for d in diff(primary, mirrored)} <= {"sequence_value"}


def test_table_checksum_matches_the_fingerprint(shop_conn: psycopg.Connection[Any]) -> None:
    one = table_checksum(shop_conn, schema="public", table="customers")
    relation = fingerprint(shop_conn).tables["public.customers"]
    assert (one.rows, one.digest) == (relation.rows, relation.checksum)


def test_excluded_schemas_are_left_out(shop_conn: psycopg.Connection[Any]) -> None:
    before = fingerprint(shop_conn)
    shop_conn.execute("CREATE SCHEMA pgcutover; CREATE TABLE pgcutover.runs (id int)")
    shop_conn.execute("CREATE SCHEMA scratch; CREATE TABLE scratch.notes (id int)")
    assert diff(before, fingerprint(shop_conn, exclude_schemas=("pgcutover", "scratch"))) == []
    assert "pgcutover.runs" in fingerprint(shop_conn, exclude_schemas=()).tables


@pytest.mark.slow
def test_fingerprint_of_half_a_million_wide_rows_is_fast(
    shop_conn: psycopg.Connection[Any],
) -> None:
    """The budget is 3M rows in 5 s on two cores; 500k rows get a proportional 2.5 s."""
    shop_conn.execute(
        "CREATE TABLE wide AS SELECT g AS id, g % 5000 AS customer_id,"
        " 'user' || g || '@example.com' AS email, (g % 10000) / 7.0 AS total,"
        " now() - g * interval '1 minute' AS created_at, repeat('x', 40 + g % 60) AS note,"
        " g % 2 = 0 AS flag, jsonb_build_object('k', g) AS payload"
        " FROM generate_series(1, 500000) g"
    )
    shop_conn.execute("VACUUM ANALYZE wide")
    started = time.perf_counter()
    fp = fingerprint(shop_conn)
    elapsed = time.perf_counter() - started
    assert fp.row_count("public.wide") == 500_000
    assert elapsed < 2.5, f"fingerprint took {elapsed:.2f} s for 500,000 rows"
