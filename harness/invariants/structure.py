"""Invariants over two fingerprints (before and after a migration) and the live database.

Tables are matched across the migration by the plan's layout: ``public.orders``
before is ``tenant_kct.orders`` after, and its rows, constraints, indexes,
triggers and sequences must have come along unchanged.
"""

from __future__ import annotations

from collections.abc import Collection

from psycopg import sql

from harness.catalog import Fingerprint, diff
from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import Layout

__all__ = [
    "check_data",
    "check_foreign_keys",
    "check_layout",
    "check_same",
    "check_sequences",
    "check_table_parts",
    "moved_name",
]


def moved_name(layout: Layout, qualified: str) -> str:
    """Where the table ``qualified`` (before the migration) should be after it."""
    return layout.target(qualified) if qualified in layout.tables else qualified


def check_layout(layout: Layout, after: Fingerprint, conn: Conn) -> Check:
    offenders = []
    for source, schema in sorted(layout.tables.items()):
        name = source.split(".", 1)[1]
        found = after.table_schema(name)
        if schema not in found:
            where = ", ".join(found) if found else "nowhere (the table is gone)"
            offenders.append(f"`{source}`: expected in {schema}, found in {where}")
        elif len(found) > 1:
            others = ", ".join(s for s in found if s != schema)
            offenders.append(f"`{schema}.{name}`: in place, but a table {name} is also in {others}")
    for schema in layout.schemas:
        if schema not in after.schemas:
            offenders.append(f"schema {schema} does not exist")
    for table in layout.new_tables:
        if table not in after.tables:
            offenders.append(f"new table `{table}` does not exist")
    for view in layout.materialized_views:
        relation = after.views.get(view)
        if relation is None or relation.kind != "m":
            offenders.append(f"materialized view `{view}` does not exist")
    existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    for role in layout.roles:
        if role not in existing:
            offenders.append(f"role {role} does not exist")
    return Check.of(
        "layout.as_planned",
        offenders=offenders,
        ok=f"{len(layout.tables)} tables, {len(layout.schemas)} schemas, {len(layout.roles)} "
        "roles and every new table are where the plan says, and nowhere else",
        failed="the database after migration is not laid out as the plan says",
    )


def check_data(layout: Layout, before: Fingerprint, after: Fingerprint) -> Check:
    offenders = []
    for qualified, table in sorted(before.tables.items()):
        now = after.tables.get(moved_name(layout, qualified))
        if now is None:
            continue  # check_layout names it
        if table.rows != now.rows:
            offenders.append(
                f"`{now.qualified}`: {table.rows:,} rows before, {now.rows:,} after"
                if table.rows is not None and now.rows is not None
                else f"`{now.qualified}`: row count not comparable"
            )
        elif table.checksum != now.checksum:
            same = f"{table.rows:,} row{'s' if table.rows != 1 else ''}"
            offenders.append(f"`{now.qualified}`: same {same}, but their contents changed")
    rows = sum(t.rows or 0 for t in before.tables.values())
    return Check.of(
        "data.unchanged",
        offenders=offenders,
        ok=f"all {rows:,} rows of {len(before.tables)} tables are there, unchanged "
        "(counts and checksums)",
        failed="rows were lost or changed",
    )


def _parts(fp: Fingerprint, qualified: str) -> dict[str, str]:
    table = fp.tables[qualified]
    parts: dict[str, str] = {}
    for c in table.columns:
        parts[f"column {c.name}"] = f"{c.type} null={not c.not_null} identity={c.identity}"
    for k in table.constraints:
        parts[f"constraint {k.name}"] = k.definition
    for i in table.indexes:
        parts[f"index {i.name}"] = i.definition
    for t in table.triggers:
        parts[f"trigger {t.name}"] = t.enabled
    return parts


def check_table_parts(layout: Layout, before: Fingerprint, after: Fingerprint) -> Check:
    """Columns, constraints, indexes and triggers all moved with their tables."""
    offenders = []
    for qualified in sorted(before.tables):
        target = moved_name(layout, qualified)
        if target not in after.tables:
            continue
        was, now = _parts(before, qualified), _parts(after, target)
        for key in sorted(was.keys() - now.keys()):
            offenders.append(f"`{target}`: {key} is gone")
        for key in sorted(now.keys() - was.keys()):
            if key.startswith("column"):
                offenders.append(f"`{target}`: {key} was added")
        for key in sorted(was.keys() & now.keys()):
            if key.startswith("column") and was[key] != now[key]:
                offenders.append(f"`{target}`: {key} changed from {was[key]} to {now[key]}")
    return Check.of(
        "tables.intact",
        offenders=offenders,
        ok="every table kept its columns, constraints, indexes and triggers",
        failed="tables lost or changed columns, constraints, indexes or triggers",
    )


def check_sequences(layout: Layout, before: Fingerprint, after: Fingerprint) -> Check:
    by_name = {s.name: s for s in after.sequences.values()}
    offenders = []
    for qualified, seq in sorted(before.sequences.items()):
        now = after.sequences.get(qualified) or by_name.get(seq.name)
        if now is None:
            offenders.append(f"`{qualified}`: sequence is gone")
        elif (now.last_value, now.is_called) < (seq.last_value, seq.is_called):
            offenders.append(
                f"`{now.qualified}`: last value {now.last_value:,} after, "
                f"{seq.last_value:,} before (reset: new rows would reuse ids)"
            )
    return Check.of(
        "sequences.not_reset",
        offenders=offenders,
        ok=f"all {len(before.sequences)} sequences kept counting from where they were",
        failed="sequences were lost or reset",
    )


_FOREIGN_KEYS = """
SELECT n.nspname, c.relname, con.conname, pn.nspname, p.relname,
       array(SELECT attname::text FROM unnest(con.conkey) WITH ORDINALITY k(a, i)
               JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.a ORDER BY k.i),
       array(SELECT attname::text FROM unnest(con.confkey) WITH ORDINALITY k(a, i)
               JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.a ORDER BY k.i),
       con.convalidated
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
 WHERE con.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2, 3
"""


def _orphans_query(
    child: sql.Identifier, parent: sql.Identifier, cols: list[str], pcols: list[str]
) -> sql.Composed:
    """Rows of ``child`` whose key is set (MATCH SIMPLE) and has no row in ``parent``."""
    present = sql.SQL(" AND ").join(
        sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols
    )
    join = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), sql.Identifier(cc))
        for cc, pc in zip(cols, pcols, strict=True)
    )
    return sql.SQL(
        "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})"
    ).format(child, present, parent, join)


def check_foreign_keys(conn: Conn) -> Check:
    """Every foreign key validated, and no row pointing at a missing parent (checked in full)."""
    offenders = []
    keys = conn.execute(_FOREIGN_KEYS).fetchall()
    for schema, table, name, pschema, ptable, cols, pcols, validated in keys:
        child = f"{schema}.{table}"
        if not validated:
            offenders.append(f"`{child}`: foreign key {name} is NOT VALID")
        query = _orphans_query(
            sql.Identifier(str(schema), str(table)),
            sql.Identifier(str(pschema), str(ptable)),
            [str(c) for c in cols] if isinstance(cols, list) else [],
            [str(c) for c in pcols] if isinstance(pcols, list) else [],
        )
        row = conn.execute(query).fetchone()
        orphans = int(str(row[0])) if row else 0
        if orphans:
            offenders.append(
                f"`{child}`: {orphans:,} rows break foreign key {name} to {pschema}.{ptable}"
            )
    return Check.of(
        "foreign_keys.hold",
        offenders=offenders,
        ok=f"all {len(keys)} foreign keys are valid and every row has its parent",
        failed="foreign keys are broken",
    )


def check_same(
    name: str,
    expected: Fingerprint,
    actual: Fingerprint,
    *,
    ok: str,
    failed: str,
    ignore: Collection[str] = (),
) -> Check:
    """Two fingerprints that must be equal; each difference is an offender."""
    differences = diff(expected, actual, ignore=ignore)
    return Check.of(name, offenders=[str(d) for d in differences], ok=ok, failed=failed)
