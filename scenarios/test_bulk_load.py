"""The bulk load of the built-in database: the same database as the plain load, faster.

The bulk path copies rows into bare tables and builds keys and indexes on
other sessions while the copy goes on; the plain path does everything in one
transaction. Both must give the same database, to the last checksum, and the
bulk one must hand the gate a database nothing is left to vacuum in.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from harness.catalog import IGNORE_DATABASE, diff, fingerprint
from harness.databases import create_database, drop_database
from harness.legacy import seed
from harness.legacy.bulk import bulk_load
from harness.legacy.loader import _schema_sections

_USER_OBJECTS = """
    SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public')
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public')
         + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public')
"""


@pytest.fixture
def plain_dsn(empty_dsn: str) -> Iterator[str]:
    """A second empty database on the same server, for the plain load."""
    name = f"{conninfo_to_dict(empty_dsn)['dbname']}_plain"
    dsn = create_database(empty_dsn, name)
    try:
        yield dsn
    finally:
        drop_database(empty_dsn, name)


def test_bulk_and_plain_loads_give_the_same_database(empty_dsn: str, plain_dsn: str) -> None:
    bulk = seed(empty_dsn, scale=2)
    plain = seed(plain_dsn, scale=2, bulk=False)
    assert bulk.rows == plain.rows
    assert bulk.bytes > 0
    with psycopg.connect(empty_dsn, autocommit=True) as a, psycopg.connect(plain_dsn) as b:
        fast, slow = fingerprint(a), fingerprint(b)
    # Structure and the checksum of every table: keys, indexes, sequences, all of it;
    # the two databases differ in name only.
    assert [str(d) for d in diff(slow, fast, ignore=(IGNORE_DATABASE,))] == []
    assert fast.tables == slow.tables
    assert {t: r.rows for t, r in fast.tables.items()} == {
        t: r.rows for t, r in slow.tables.items()
    }


def test_the_bulk_load_leaves_nothing_for_autovacuum(empty_dsn: str) -> None:
    seed(empty_dsn, scale=1)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT s.relname, s.n_dead_tup, s.n_mod_since_analyze, s.last_vacuum IS NOT NULL,
                   s.last_analyze IS NOT NULL, c.relpages, c.relallvisible
              FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            """
        ).fetchall()
    assert len(rows) == 11
    for name, dead, modified, vacuumed, analyzed, pages, all_visible in rows:
        assert (dead, modified, vacuumed, analyzed) == (0, 0, True, True), name
        # Frozen by COPY FREEZE and vacuumed: no page is left for a VACUUM to visit.
        assert all_visible == pages, name


def test_a_failed_bulk_load_leaves_the_database_empty(empty_dsn: str) -> None:
    pre_data, post_data = _schema_sections()
    # A key the rows break: the load fails after every table is in.
    broken = post_data + "\nALTER TABLE orders ADD CONSTRAINT never CHECK (total < 0);\n"
    with pytest.raises(psycopg.errors.CheckViolation):
        bulk_load(empty_dsn, pre_data=pre_data, post_data=broken, scale=1, say=lambda _: None)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        row = conn.execute(_USER_OBJECTS).fetchone()
    assert row == (0,)
    # And the database takes a load again.
    assert seed(empty_dsn, scale=1).total_rows > 0
