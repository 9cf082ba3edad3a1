"""Seeding the legacy database into an empty one: built in, from a dump, and refusals.

Every later scenario stands on this database, so the checks here are about
what those scenarios assume: the plan's counts, foreign keys that hold,
sequences past the copied ids, and the functions, view and triggers working.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from harness.cluster.binaries import find_binaries
from harness.databases import create_database, drop_database
from harness.errors import HarnessError, InfrastructureError, UsageError
from harness.invariants import check_foreign_keys
from harness.legacy import LEGACY_COUNTS, seed
from harness.legacy.data import AWKWARD_NAMES, FOREIGN_KEYS

Conn = psycopg.Connection[TupleRow]

_FOREIGN_KEYS_IN_CATALOG = """
    SELECT con.conrelid::regclass::text, a.attname, con.confrelid::regclass::text,
           fa.attname, con.convalidated
      FROM pg_constraint con
      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
      JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
     WHERE con.contype = 'f' AND cardinality(con.conkey) = 1
"""
_TABLE_COUNT = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def connect(dsn: str) -> Conn:
    return psycopg.connect(dsn, autocommit=True)


def scalar(conn: Conn, query: str, *params: object) -> object:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def restore_dsn(empty_dsn: str) -> Iterator[str]:
    """A second empty database on the same server, for a dump of the first."""
    name = f"{conninfo_to_dict(empty_dsn)['dbname']}_restored"
    dsn = create_database(empty_dsn, name)
    try:
        yield dsn
    finally:
        drop_database(empty_dsn, name)


def test_scale_1_has_the_plans_counts(empty_dsn: str) -> None:
    messages: list[str] = []
    report = seed(empty_dsn, progress=messages.append)
    assert report.rows == dict(LEGACY_COUNTS)
    with connect(empty_dsn) as conn:
        counted = conn.execute(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM product_variants),"
            " (SELECT count(*) FROM customers)"
        ).fetchone()
    assert counted == (37, 544, 3369)
    assert any("copying 3,369 rows into customers" in m for m in messages)
    assert messages[-1] == report.summary()


def test_every_foreign_key_is_declared_validated_and_holds(empty_dsn: str) -> None:
    seed(empty_dsn)
    with connect(empty_dsn) as conn:
        found = conn.execute(_FOREIGN_KEYS_IN_CATALOG).fetchall()
        assert {(child, col, parent) for child, col, parent, _, _ in found} == set(FOREIGN_KEYS)
        # The gate's own check: validated, and a full anti-join per key.
        check = check_foreign_keys(conn)
    assert check.verdict == "pass", check.details
    assert f"all {len(FOREIGN_KEYS)} foreign keys" in check.reason


def test_sequences_continue_after_the_copied_ids(empty_dsn: str) -> None:
    seed(empty_dsn)
    with connect(empty_dsn) as conn:
        customer = scalar(conn, "SELECT min(id) FROM customers")
        appointment = scalar(
            conn,
            "INSERT INTO appointments (customer_id, kind, scheduled_at)"
            " VALUES (%s, 'fitting', '2025-01-02 10:00+00') RETURNING id",
            customer,
        )
        assert appointment == LEGACY_COUNTS["appointments"] + 1
        order = scalar(
            conn,
            "INSERT INTO orders (customer_id, subtotal, total, placed_at)"
            " VALUES (%s, 10, 10, now()) RETURNING order_number",
            customer,
        )
        assert order == scalar(conn, "SELECT max(order_number) FROM orders")
        assert scalar(conn, "SELECT count(*) FROM orders WHERE order_number = %s", order) == 1
        for table in ("order_items", "product_recommendations"):
            next_id = scalar(conn, f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
            assert next_id == LEGACY_COUNTS[table] + 1


def test_defaults_triggers_functions_and_view_work(empty_dsn: str) -> None:
    seed(empty_dsn)
    with connect(empty_dsn) as conn:
        new_id = scalar(
            conn,
            "INSERT INTO customers (email, first_name) VALUES ('new@example.com', 'New')"
            " RETURNING id",
        )
        assert re.fullmatch(r"c[0-9a-f]{24}", str(new_id))
        with conn.transaction():
            conn.execute("UPDATE customers SET phone = '+1-816-555-0000' WHERE id = %s", (new_id,))
            touched = scalar(conn, "SELECT updated_at = now() FROM customers WHERE id = %s", new_id)
        assert touched is True
        customer = scalar(conn, "SELECT customer_id FROM orders WHERE status = 'delivered' LIMIT 1")
        expected = scalar(
            conn,
            "SELECT sum(total) FROM orders WHERE customer_id = %s"
            " AND status NOT IN ('cancelled', 'refunded')",
            customer,
        )
        assert scalar(conn, "SELECT customer_lifetime_value(%s)", customer) == expected
        product = scalar(conn, "SELECT product_id FROM product_variants LIMIT 1")
        stock = scalar(
            conn, "SELECT sum(stock) FROM product_variants WHERE product_id = %s", product
        )
        assert scalar(conn, "SELECT variant_stock(%s)", product) == stock
        assert scalar(conn, "SELECT count(*) FROM order_summaries") == LEGACY_COUNTS["orders"]


def test_awkward_values_survive_the_copy(empty_dsn: str) -> None:
    seed(empty_dsn)
    with connect(empty_dsn) as conn:
        names = set(conn.execute("SELECT first_name, last_name FROM customers").fetchall())
        extremes = conn.execute("SELECT min(price), max(price) FROM product_variants").fetchone()
    assert set(AWKWARD_NAMES) <= names
    assert extremes is not None
    assert (str(extremes[0]), str(extremes[1])) == ("0.00", "99999999.99")


def test_seeding_twice_is_refused_and_changes_nothing(empty_dsn: str) -> None:
    seed(empty_dsn)
    name = conninfo_to_dict(empty_dsn)["dbname"]
    with pytest.raises(UsageError, match="is not empty") as info:
        seed(empty_dsn)
    assert f"database {name} " in str(info.value)
    assert "public.customers" in str(info.value)
    with connect(empty_dsn) as conn:
        assert scalar(conn, "SELECT count(*) FROM customers") == LEGACY_COUNTS["customers"]


@pytest.mark.parametrize(("fmt", "suffix"), [("p", ".sql"), ("c", ".dump"), ("d", ".dir")])
def test_a_dump_of_the_seeded_database_loads(
    empty_dsn: str, restore_dsn: str, tmp_path: Path, fmt: str, suffix: str
) -> None:
    seed(empty_dsn)
    dump = tmp_path / f"legacy{suffix}"
    pg_dump = find_binaries().path("pg_dump")
    subprocess.run([pg_dump, "-F", fmt, "-f", str(dump), "-d", empty_dsn], check=True)
    report = seed(restore_dsn, legacy=dump)
    assert report.rows == dict(LEGACY_COUNTS)
    assert report.source == str(dump)
    checksum = "SELECT md5(string_agg(c::text, '|' ORDER BY id)) FROM customers c"
    with connect(empty_dsn) as source, connect(restore_dsn) as restored:
        assert scalar(restored, checksum) == scalar(source, checksum)
        routines = "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        assert scalar(restored, routines) == scalar(source, routines) == 4


def test_a_broken_sql_file_names_its_error_and_leaves_the_database_empty(
    empty_dsn: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.sql"
    broken.write_text("CREATE TABLE created_first (id int);\nINSERT INTO nowhere VALUES (1);\n")
    with pytest.raises(UsageError) as info:
        seed(empty_dsn, legacy=broken)
    message = str(info.value)
    assert str(broken) in message
    assert 'relation "nowhere" does not exist' in message
    assert "psql exited with 3" in message
    with connect(empty_dsn) as conn:
        assert scalar(conn, _TABLE_COUNT) == 0


_OWNED_DUMP = """
CREATE TABLE public.shop_items (id int PRIMARY KEY, name text NOT NULL);
ALTER TABLE public.shop_items OWNER TO pgcutover_test_owner;
GRANT SELECT ON public.shop_items TO pgcutover_test_reader;
INSERT INTO public.shop_items VALUES (1, 'lamp');
"""


def test_roles_a_dump_names_are_created_where_the_harness_runs_the_server(
    empty_dsn: str, restore_dsn: str, tmp_path: Path
) -> None:
    """A dump of one database names its cluster's roles (owner, grantees) without creating
    them. Where the harness set the server up, it creates them, and the database keeps
    its owner and grants as dumped; elsewhere the error says what to do."""
    dump = tmp_path / "owned.sql"
    dump.write_text(_OWNED_DUMP)
    with pytest.raises(UsageError) as info:
        seed(empty_dsn, legacy=dump)
    assert 'role "pgcutover_test_owner" does not exist' in str(info.value)
    assert "--no-owner --no-privileges" in str(info.value)

    said: list[str] = []
    owner_of = "SELECT tableowner FROM pg_tables WHERE tablename = 'shop_items'"
    try:
        report = seed(empty_dsn, legacy=dump, create_roles=True, progress=said.append)
        with connect(empty_dsn) as conn:
            owner = scalar(conn, owner_of)
            readable = scalar(
                conn, "SELECT has_table_privilege('pgcutover_test_reader', 'shop_items', 'SELECT')"
            )
            logins = scalar(
                conn,
                "SELECT count(*) FROM pg_roles WHERE rolcanlogin"
                " AND rolname IN ('pgcutover_test_owner', 'pgcutover_test_reader')",
            )
        # An archive keeps its owners too, where the roles may be made.
        archive = tmp_path / "owned.dump"
        pg_dump = find_binaries().path("pg_dump")
        subprocess.run([pg_dump, "-Fc", "-f", str(archive), "-d", empty_dsn], check=True)
        seed(restore_dsn, legacy=archive, create_roles=True)
        with connect(restore_dsn) as conn:
            archive_owner = scalar(conn, owner_of)
            conn.execute("DROP TABLE public.shop_items")
    finally:
        with connect(empty_dsn) as conn:
            conn.execute("DROP TABLE IF EXISTS public.shop_items")
            conn.execute("DROP ROLE IF EXISTS pgcutover_test_owner, pgcutover_test_reader")
    assert report.rows == {"shop_items": 1}
    assert (owner, readable, logins) == ("pgcutover_test_owner", True, 0)
    assert archive_owner == "pgcutover_test_owner"
    assert any(
        "created pgcutover_test_owner, pgcutover_test_reader (NOLOGIN)" in m for m in said
    ), said


def test_a_truncated_archive_names_pg_restores_error(
    empty_dsn: str, restore_dsn: str, tmp_path: Path
) -> None:
    seed(empty_dsn)
    dump = tmp_path / "legacy.dump"
    subprocess.run(
        [find_binaries().path("pg_dump"), "-Fc", "-f", str(dump), "-d", empty_dsn], check=True
    )
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    with pytest.raises(UsageError, match="pg_restore exited with") as info:
        seed(restore_dsn, legacy=dump)
    assert "--- last lines from pg_restore ---\npg_restore: " in str(info.value)
    with connect(restore_dsn) as conn:
        assert scalar(conn, _TABLE_COUNT) == 0


def test_a_password_in_the_dsn_is_never_shown(empty_dsn: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.sql"
    broken.write_text("SELECT * FROM nowhere;\n")
    with_password = make_conninfo(empty_dsn, password="hunter2-secret")
    # Trust authentication ignores the password; a server that checks it refuses
    # the connection instead. Either way the message must not carry it.
    with pytest.raises(HarnessError) as info:
        seed(with_password, legacy=broken)
    assert "hunter2-secret" not in str(info.value)
    assert "nowhere" in str(info.value) or "***" in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (bytes(range(256)) * 4, "neither SQL text nor a pg_dump archive"),
        (gzip.compress(b"CREATE TABLE t (id int);"), "gzip-compressed"),
    ],
)
def test_input_that_is_not_a_dump_is_refused(
    empty_dsn: str, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "legacy.sql"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=expected) as info:
        seed(empty_dsn, legacy=path)
    assert str(path) in str(info.value)


def test_a_server_that_refuses_connections_is_named_without_its_password() -> None:
    # Port 1 on the loopback interface: nothing listens there, the refusal is immediate.
    dsn = "postgresql://kct:s3cret-pw@127.0.0.1:1/kct_production"
    with pytest.raises(InfrastructureError, match="cannot connect to") as info:
        seed(dsn)
    message = str(info.value)
    assert "postgresql://kct:***@127.0.0.1:1/kct_production" in message
    assert "s3cret-pw" not in message
