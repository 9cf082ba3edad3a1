"""The change ledger on a real server: the application's writes replayed exactly, every
other change named, and a clear word where the server cannot keep a ledger."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from strategies import database_settings

from harness.catalog.checksum import table_checksum
from harness.cluster import Cluster
from harness.databases import connect, create_database, drop_database
from harness.dsn import with_login
from harness.ledger import Accounting, ChangeLedger, LedgerUnavailable
from harness.testing.fix_legacy import fresh_name

SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE "Odd: Table" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Note" text, tags text[], blob bytea, price numeric(10, 2), feel mood,
    doc jsonb, at timestamptz, twice bigint GENERATED ALWAYS AS (id * 2) STORED
);
CREATE TABLE pairs (a int, b text, v float8, PRIMARY KEY (a, b));
CREATE TABLE loose (x int, y text);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.v := coalesce(NEW.v, 0) + 1; RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON pairs FOR EACH ROW EXECUTE FUNCTION touch();
"""

TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
WRITES = st.lists(
    st.one_of(
        st.tuples(st.just("odd"), TEXTS, st.lists(TEXTS, max_size=3), st.binary(max_size=4)),
        st.tuples(st.just("pair"), st.integers(0, 3), st.sampled_from(["x", "y's", 'q"z']),
                  st.floats(allow_nan=False, allow_infinity=False, width=32)),
        st.tuples(st.just("update"), st.integers(0, 3), TEXTS),
        st.tuples(st.just("delete"), st.integers(0, 3)),
    ),
    max_size=12,
)  # fmt: skip


@pytest.fixture(scope="module")
def ledger_db(cluster: Cluster) -> Iterator[str]:
    name = fresh_name("ledger")
    dsn = create_database(cluster.endpoints.primary, name)
    with connect(dsn) as conn:
        conn.execute(SCHEMA)
    try:
        yield dsn
    finally:
        drop_database(cluster.endpoints.primary, name)


def _apply(conn: psycopg.Connection[tuple[object, ...]], write: tuple[object, ...]) -> None:
    kind = write[0]
    if kind == "odd":
        conn.execute(
            'INSERT INTO "Odd: Table" ("Note", tags, blob, price, feel, doc, at) '
            "VALUES (%s, %s, %s, 12.5, 'busy', %s, now())",
            (write[1], write[2], write[3], psycopg.types.json.Jsonb({"n": write[1]})),
        )
    elif kind == "pair":
        conn.execute(
            "INSERT INTO pairs VALUES (%s, %s, %s) ON CONFLICT (a, b) DO UPDATE SET v = 7",
            (write[1], write[2], write[3]),
        )
    elif kind == "update":
        conn.execute(
            'UPDATE "Odd: Table" SET "Note" = %s, price = price + 1 WHERE id %% 4 = %s',
            (write[2], write[1]),
        )
    else:
        conn.execute("DELETE FROM pairs WHERE a = %s", (write[1],))


def _xid(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT (pg_current_xact_id()::text::bigint % 4294967296)::bigint"
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


@given(writes=WRITES)
@database_settings(max_examples=8)
def test_the_applications_writes_replay_onto_the_copy_exactly(
    ledger_db: str, writes: list[tuple[object, ...]]
) -> None:
    """After any mix of inserts, updates and deletes (triggers, identities, generated
    columns, arrays, bytea, enums, json, quoted names), the copy equals the database."""
    ledger = ChangeLedger(ledger_db)
    ledger.open()
    ledger.start()
    xids: set[int] = set()
    try:
        with connect(ledger_db) as conn:
            for write in writes:
                with conn.transaction():
                    xids.add(_xid(conn))
                    _apply(conn, write)
            ledger.catch_up(ledger.settle(), traffic=lambda: xids)
            assert ledger.copy is not None
            for table in ('"Odd: Table"', "pairs"):
                name = table.strip('"')
                ours = table_checksum(conn, schema="public", table=name)
                theirs = table_checksum(ledger.copy, schema="public", table=name)
                ledger.copy.rollback()
                assert ours == theirs, name
        assert ledger.step_changes == {}
    finally:
        ledger.close()
        with connect(ledger_db) as conn:
            conn.execute('TRUNCATE "Odd: Table", pairs, loose')


def test_a_change_by_anyone_else_is_named_with_its_columns(ledger_db: str) -> None:
    with connect(ledger_db) as conn:
        conn.execute("INSERT INTO pairs VALUES (1, 'x', 1), (2, 'y', 2)")
    ledger = ChangeLedger(ledger_db)
    ledger.open()
    ledger.start()
    try:
        with connect(ledger_db) as conn:
            ledger.mark("up/001_fix.sql", step=True)
            conn.execute("UPDATE pairs SET b = b WHERE a = 1")
            conn.execute("DELETE FROM loose")
            ledger.mark("after up/001_fix.sql", step=False)
            ledger.catch_up(ledger.settle(), traffic=set)
        named = [str(c) for c in ledger.changes_in(["up/001_fix.sql"])]
        assert named == [
            "up/001_fix.sql: `public.pairs`: 1 row updated (columns changed: v), "
            "not by the application"
        ]
    finally:
        ledger.close()
        with connect(ledger_db) as conn:
            conn.execute("TRUNCATE pairs")


def test_a_change_the_copy_cannot_take_names_its_table_and_keeps_the_others(
    ledger_db: str,
) -> None:
    """The copy takes the application's changes in batches; one change it refuses (here
    a CHECK only the copy has, as a migrated column type's text would not fit) names
    its table as not accounted for, and every other change is still replayed."""
    ledger = ChangeLedger(ledger_db)
    ledger.open()
    ledger.start()
    xids: set[int] = set()
    try:
        assert ledger.copy is not None
        ledger.copy.execute("ALTER TABLE pairs ADD CHECK (v < 100)")
        ledger.copy.commit()
        with connect(ledger_db) as conn:
            writes: list[tuple[object, ...]] = [
                ("pair", 1, "x", 5.0), ("pair", 2, "y", 500.0), ("odd", "n", [], b"")
            ]  # fmt: skip
            for write in writes:
                with conn.transaction():
                    xids.add(_xid(conn))
                    _apply(conn, write)
            ledger.catch_up(ledger.settle(), traffic=lambda: xids)
            assert list(ledger.unaccounted) == ["public.pairs"]
            assert "violates check constraint" in ledger.unaccounted["public.pairs"]
            ours = table_checksum(conn, schema="public", table="Odd: Table")
            theirs = table_checksum(ledger.copy, schema="public", table="Odd: Table")
            ledger.copy.rollback()
            assert ours == theirs
            assert ours.rows == 1
    finally:
        ledger.close()
        with connect(ledger_db) as conn:
            conn.execute('TRUNCATE "Odd: Table", pairs, loose')


def test_a_login_without_replication_gets_the_reason_and_the_fix(
    ledger_db: str, cluster: Cluster
) -> None:
    role = fresh_name("plain")
    with connect(ledger_db) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(role)))
    cluster.allow_users([role])
    try:
        ledger = ChangeLedger(with_login(ledger_db, user=role, password=None))
        with pytest.raises(LedgerUnavailable, match="needs REPLICATION"):
            ledger.open()  # session_replication_role needs superuser
        assert ledger.conn is None  # nothing left behind
        assert ledger.copy_name is None
    finally:
        with connect(ledger_db) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_without_a_ledger_the_tables_left_out_are_named() -> None:
    from harness.invariants.result import Check

    accounting = Accounting(why="wal_level is replica on this server")
    accounting.leave_out(["orders", "appointments"])
    judged = accounting.judge(Check("data.unchanged", "pass", "all rows unchanged"))
    assert judged.verdict == "pass"
    assert judged.reason == (
        "all rows unchanged (not compared: `appointments`, `orders`, since wal_level is "
        "replica on this server)"
    )
