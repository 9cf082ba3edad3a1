"""Random legacy contents keep every invariant through migrate → rollback → migrate.

The seeded legacy database is one data set; a plan that survives it may still
lose the row with a backslash escape, a BC date, a price at the bound of its
numeric, a 100 KB TOASTed note or an empty table. Here hypothesis draws the
contents of all eleven tables (foreign keys consistent, any table possibly
empty) and each example runs plans/kct on its own database on the real
cluster, checking what the gate checks: the layout, every row unchanged,
foreign keys, sequences, an exact rollback and a second migration equal to
the first.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import event, given
from psycopg import sql
from strategies import (  # scenarios/strategies.py
    LEGACY_COPY_ORDER,
    LegacyContents,
    database_settings,
    legacy_contents,
)

from harness.catalog import fingerprint
from harness.cluster import Cluster
from harness.databases import create_database, drop_database
from harness.invariants import (
    Check,
    check_data,
    check_foreign_keys,
    check_layout,
    check_same,
    check_sequences,
    check_table_parts,
)
from harness.plan import Plan, load_plan
from harness.runner import Runner
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import fresh_name

pytestmark = pytest.mark.slow

KCT = Path(__file__).resolve().parents[1] / "plans" / "kct"
EXAMPLES = 15


@functools.cache
def kct_plan() -> Plan:
    """Read once; not a fixture, or hypothesis would print the whole plan with a failure."""
    return load_plan(KCT)


@pytest.fixture(scope="module")
def empty_legacy_template_name(cluster: Cluster) -> Iterator[str]:
    """A database with the legacy schema and no rows, which every example clones.

    schema.sql run whole creates the same empty database the loader fills; the
    search_path is pinned because the file names its objects unqualified.
    """
    name = fresh_name("legacy_empty")
    dsn = create_database(cluster.endpoints.primary, name)
    schema = resources.files("harness.legacy").joinpath("schema.sql").read_text(encoding="utf-8")
    try:
        with connect(dsn) as conn, conn.transaction():
            conn.execute("SET LOCAL search_path = public")
            conn.execute(schema.encode())
        yield name
    finally:
        drop_database(cluster.endpoints.primary, name)


def load(dsn: str, contents: LegacyContents) -> None:
    """COPY the drawn rows in (text format, as pg_dump does), then set the sequences."""
    with connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SET LOCAL search_path = public")
        for table in LEGACY_COPY_ORDER:
            rows = contents.rows[table]
            if not rows:
                continue
            columns = list(rows[0])
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        for (table, column), state in contents.sequences.items():
            if state is not None:
                cur.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s, %s)",
                    (f"public.{table}", column, *state),
                )


def describe(contents: LegacyContents) -> None:
    """What kind of example this was, for ``--hypothesis-show-statistics``."""
    values = [v for rows in contents.rows.values() for row in rows for v in row.values()]
    empty = sum(not rows for rows in contents.rows.values())
    event({0: "no table empty", len(contents.rows): "every table empty"}.get(empty, "some empty"))
    if any(isinstance(v, str) and len(v) >= 10_000 for v in values):
        event("has a wide (TOASTed) value")


def failures(checks: list[Check]) -> str:
    return "\n".join(str(c) for c in checks if not c.passed)


@database_settings(max_examples=EXAMPLES)
@given(contents=legacy_contents())
def test_random_contents_survive_migrate_rollback_migrate(
    cluster: Cluster, empty_legacy_template_name: str, contents: LegacyContents
) -> None:
    """Every invariant the gate checks holds for any contents, not just the seeded ones."""
    describe(contents)
    name = fresh_name("prop")
    dsn = create_database(cluster.endpoints.primary, name, template=empty_legacy_template_name)
    try:
        load(dsn, contents)
        layout = kct_plan().layout
        with connect(dsn) as conn, Runner(kct_plan(), dsn) as runner:
            before = fingerprint(conn)
            # The drawn rows are really there: otherwise "unchanged" would prove nothing.
            loaded = {t: before.row_count(f"public.{t}") for t in LEGACY_COPY_ORDER}
            assert loaded == {t: len(rows) for t, rows in contents.rows.items()}

            runner.migrate()
            migrated = fingerprint(conn)
            checks = [
                check_layout(layout, migrated, conn),
                check_data(layout, before, migrated),
                check_table_parts(layout, before, migrated),
                check_sequences(layout, before, migrated),
                check_foreign_keys(conn),
            ]
            runner.rollback()
            checks.append(
                check_same(
                    "rollback.exact",
                    before,
                    fingerprint(conn),
                    ok="after rollback the database is exactly as before the migration",
                    failed="the rollback does not restore the database as it was",
                    # as the gate judges it: the roles the plan creates and keeps on purpose
                    kept_roles=kct_plan().keeps_roles,
                )
            )
            runner.migrate()
            checks.append(
                check_same(
                    "roundtrip.migrate_again",
                    migrated,
                    fingerprint(conn),
                    ok="migrate → rollback → migrate gives the database of the first migration",
                    failed="migrating again after the rollback does not give the same database",
                )
            )
        assert not failures(checks), failures(checks)
    finally:
        drop_database(cluster.endpoints.primary, name)
