"""Data checksums computed in the server: one query per table, nothing shipped to Python.

A table's checksum is its row count and the exact (numeric) sum of a 64-bit
hash of every row. A sum does not care about row order (a restored copy or a
replica returns rows in another order) yet counts duplicates, unlike XOR.

The row hash is ``hash_record_extended`` over the columns (PostgreSQL >= 14),
which is about three times faster than hashing the row's text: ~0.5 s against
~1.4 s for a million 11-column rows on two cores. Its per-column hashes are
combined linearly (``31 * h + h'``), so the sum over rows would only see each
column's multiset of values and miss two rows swapping a value;
``hashint8extended`` mixes each row hash first, which restores that.

A column is hashed natively only where its type's hash tells every distinct
value apart. Other columns are hashed through their text form: numeric (its
hash ignores the scale, 1.0 = 1.00), floats (0 = -0), interval (1 day = 24 hours),
enums (their hash is the label's OID, which a restored copy does not share),
domains, json/jsonb, and strings under a nondeterministic collation. Text output
depends on session settings, which :data:`SESSION` pins (TimeZone for timestamptz,
extra_float_digits, DateStyle, IntervalStyle, bytea_output, lc_monetary).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["SESSION", "DataChecksum", "checksum_query", "sequence_values", "table_checksum"]

# Set with is_local=true inside the fingerprint's own transaction, so the
# caller's session is left as it was. row_security=off makes a table whose
# policies would hide rows from us fail loudly instead of checksumming a subset.
SESSION = sql.SQL(
    "SELECT set_config('search_path', '', true), set_config('TimeZone', 'UTC', true),"
    " set_config('DateStyle', 'ISO, MDY', true), set_config('IntervalStyle', 'postgres', true),"
    " set_config('extra_float_digits', '1', true), set_config('bytea_output', 'hex', true),"
    " set_config('lc_monetary', 'C', true), set_config('row_security', 'off', true)"
)

# Types whose hash function separates every pair of distinct values (and arrays of them).
NATIVE_HASH_TYPES = (
    "bool",
    "bpchar",
    "bytea",
    "char",
    "date",
    "int2",
    "int4",
    "int8",
    "name",
    "oid",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "uuid",
    "varchar",
)

# Which columns of one table can be hashed natively; the same test appears in
# fingerprint.py's column query so a fingerprint needs no extra round trip.
_COLUMNS = sql.SQL("""
SELECT a.attname,
       et.typnamespace = 'pg_catalog'::regnamespace
       AND et.typname::text = ANY(%(native)s)
       AND (a.attcollation = 0 OR co.collisdeterministic)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type et ON et.oid = CASE WHEN t.typelem <> 0 AND EXISTS (
       SELECT 1 FROM pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid)
     THEN t.typelem ELSE t.oid END
LEFT JOIN pg_collation co ON co.oid = a.attcollation
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
""")


@dataclass(frozen=True)
class DataChecksum:
    rows: int
    digest: str


def checksum_query(*, schema: str, table: str, columns: Sequence[tuple[str, bool]]) -> sql.Composed:
    """The one query that returns ``(count, digest)`` for a table.

    ``columns`` are ``(name, hashed natively)`` in column order. The alias is
    written qualified (``"t"."col"``) so a column named like the alias cannot be
    mistaken for the whole row. A cast to text keeps the column's collation, and
    text hashes under a nondeterministic one ignore case: hence ``COLLATE "C"``.
    """
    alias = sql.Identifier("t")
    parts = [
        sql.SQL("{}.{}").format(alias, sql.Identifier(name))
        if native
        else sql.SQL('{}.{}::text COLLATE pg_catalog."C"').format(alias, sql.Identifier(name))
        for name, native in columns
    ]
    return sql.SQL(
        "SELECT count(*), coalesce(sum(hashint8extended(hash_record_extended(ROW({}), 0), 0)), 0)"
        "::text FROM {}.{} AS {}"
    ).format(sql.SQL(", ").join(parts), sql.Identifier(schema), sql.Identifier(table), alias)


def run(
    cur: psycopg.Cursor[Any], *, schema: str, table: str, columns: Sequence[tuple[str, bool]] | None
) -> tuple[int, str]:
    """``(rows, digest)`` through a cursor on which :data:`SESSION` is already in effect."""
    cur.execute(checksum_query(schema=schema, table=table, columns=columns or ()))
    row = cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return int(row[0]), str(row[1])


def table_checksum(
    conn: psycopg.Connection[Any],
    *,
    schema: str,
    table: str,
    only: Sequence[str] | None = None,
) -> DataChecksum:
    """Checksum one table on its own, e.g. to compare it on the primary and a replica.

    Equal to the ``rows``/``checksum`` a fingerprint records for it; with ``only``,
    to what it recorded when the table had just those columns, in that order (a
    column added since leaves the old ones comparable). Runs in a transaction (a
    savepoint if one is open) that it rolls back, so the settings it pins do not
    outlive the call; in an open REPEATABLE READ transaction it sees that
    transaction's snapshot.
    """
    params = {"schema": schema, "table": table, "native": list(NATIVE_HASH_TYPES)}
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(SESSION)
        cur.execute(_COLUMNS, params)
        columns = [(str(name), bool(native)) for name, native in cur.fetchall()]
        if only is not None:
            native = dict(columns)
            columns = [(name, native[name]) for name in only if name in native]
        rows, digest = run(cur, schema=schema, table=table, columns=columns)
    return DataChecksum(rows, digest)


def sequence_values(
    cur: psycopg.Cursor[Any], sequences: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, bool]]:
    """``(last_value, is_called)`` of every sequence, in one query.

    Read from the sequence itself, not pg_sequences: pg_sequences.last_value is
    NULL both for a fresh sequence and after ``setval(s, 42, false)``, which
    hands out 42 next. On a hot standby the value read is up to 32 ahead of
    the primary's, because nextval WAL-logs that many values in advance
    (SEQ_LOG_VALS in sequence.c).
    """
    selects = [
        sql.SQL("SELECT {}, {}, last_value, is_called FROM {}.{}").format(
            sql.Literal(schema), sql.Literal(name), sql.Identifier(schema), sql.Identifier(name)
        )
        for schema, name in sequences
    ]
    if not selects:
        return {}
    cur.execute(sql.SQL(" UNION ALL ").join(selects))
    return {(r[0], r[1]): (int(r[2]), bool(r[3])) for r in cur.fetchall()}
