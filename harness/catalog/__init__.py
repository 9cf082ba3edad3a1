"""What a database is, read from pg_catalog, and how two of them differ.

This is how the harness proves "rollback exact", "nothing lost", "replica
equals primary" and "the backup restores to the same thing"::

    before = fingerprint(conn)                 # structure + one checksum per table
    ...                                        # migrate, then roll back
    problems = diff(before, fingerprint(conn)) # [] when nothing changed
    for d in problems:
        print(d)  # `public.orders`: expected in public, found in sales

The API for invariants:

- ``fingerprint(conn, *, data=True, exclude_schemas=("pgcutover",)) -> Fingerprint``
  reads every non-system schema in one read-only snapshot; works on a hot standby.
- ``Fingerprint.tables`` / ``.views`` / ``.sequences`` / ``.functions`` / ``.types``:
  keyed by qualified name (``public.orders``; functions add their arguments).
  ``Relation.rows`` and ``.checksum`` are None when data was not read.
- ``Fingerprint.table_schema("orders") -> ["sales"]``: where a table went.
- ``Fingerprint.row_count("public.orders") -> int | None`` (KeyError if no such table).
- ``Fingerprint.settings``: ``{"database": {"search_path": "..."}, "role app": {...}}``.
- ``Fingerprint.to_json()`` / ``Fingerprint.from_json(d)``: save one, compare later.
- ``diff(expected, actual, *, ignore=()) -> list[Difference]`` and ``same(...) -> bool``.
  ``Difference(kind, object, message)``; ``str(d)`` is the sentence for the report.
- ``ignore`` keys: ``IGNORE_DATA`` ("data"), ``IGNORE_SEQUENCE_VALUES``
  ("sequence_values", needed against a standby), ``IGNORE_PRIVILEGES`` ("privileges"),
  ``IGNORE_OWNERS`` ("owners"), ``IGNORE_DATABASE`` ("database": what pg_dump
  without --create leaves behind), ``IGNORE_ROLES`` ("roles").
- ``table_checksum(conn, *, schema, table) -> DataChecksum(rows, digest)``: one table.
"""

from __future__ import annotations

from harness.catalog.checksum import DataChecksum, table_checksum
from harness.catalog.diff import (
    IGNORE_DATA,
    IGNORE_DATABASE,
    IGNORE_KEYS,
    IGNORE_OWNERS,
    IGNORE_PRIVILEGES,
    IGNORE_ROLES,
    IGNORE_SEQUENCE_VALUES,
    Difference,
    diff,
    same,
)
from harness.catalog.fingerprint import Fingerprint, Relation, Sequence, fingerprint

__all__ = [
    "IGNORE_DATA",
    "IGNORE_DATABASE",
    "IGNORE_KEYS",
    "IGNORE_OWNERS",
    "IGNORE_PRIVILEGES",
    "IGNORE_ROLES",
    "IGNORE_SEQUENCE_VALUES",
    "DataChecksum",
    "Difference",
    "Fingerprint",
    "Relation",
    "Sequence",
    "diff",
    "fingerprint",
    "same",
    "table_checksum",
]
