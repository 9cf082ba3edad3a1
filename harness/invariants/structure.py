"""Invariants over two fingerprints (before and after a migration) and the live database.

Tables are matched across the migration by the plan's layout: ``public.orders``
before is ``sales.orders`` after, and its rows, constraints, indexes,
triggers and sequences must have come along unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import psycopg
from pglast import keywords
from psycopg import sql

from harness.catalog import Fingerprint, Relation, Sequence, diff
from harness.catalog.checksum import table_checksum
from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import Layout, split_name

__all__ = [
    "check_data",
    "check_foreign_keys",
    "check_layout",
    "check_same",
    "check_sequences",
    "check_table_parts",
    "moved_name",
]

# quote_ident quotes every keyword but the unreserved ones.
_KEYWORDS = frozenset(
    keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS
)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def moved_name(layout: Layout, qualified: str) -> str:
    """Where the table ``qualified`` (before the migration) should be after it."""
    return layout.target(qualified) if qualified in layout.tables else qualified


def _counterpart(layout: Layout, before: Fingerprint, after: Fingerprint, qualified: str) -> str:
    """The key of ``qualified`` after the migration, where the plan lets it be.

    A listed table is where the layout says; an unlisted one stays put, except a
    partition, which may follow its parent to the parent's new schema.
    """
    target = moved_name(layout, qualified)
    if target in after.tables or qualified in layout.tables:
        return target
    table = before.tables[qualified]
    for parent in table.inherits:
        parent_key = _unquoted_key(parent)
        if parent_key in layout.tables:
            followed = f"{layout.tables[parent_key]}.{table.name}"
            if followed in after.tables:
                return followed
    return target


def _unquoted_key(regclass_text: str) -> str:
    """``"Sales"."Order"`` (regclass output) as a fingerprint key ``Sales.Order``."""
    return ".".join(split_name(regclass_text))


def _unlisted_fate(before: Fingerprint, after: Fingerprint, qualified: str) -> str:
    table = before.tables[qualified]
    elsewhere = [
        k for k in after.tables if k not in before.tables and after.tables[k].name == table.name
    ]
    if elsewhere:
        return f"`{qualified}` (not in the plan's layout) moved to {', '.join(elsewhere)}"
    return f"`{qualified}` (not in the plan's layout) is gone"


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
    unpopulated = {
        str(r[0])
        for r in conn.execute(
            "SELECT format('%s.%s', n.nspname, c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'm' AND NOT c.relispopulated"
        ).fetchall()
    }
    for view in layout.materialized_views:
        relation = after.views.get(view)
        if relation is None or relation.kind != "m":
            offenders.append(f"materialized view `{view}` does not exist")
        elif view in unpopulated:
            offenders.append(
                f"materialized view `{view}` was never populated (WITH NO DATA and no REFRESH): "
                "every read of it fails until a REFRESH MATERIALIZED VIEW"
            )
    existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    for role in layout.roles:
        if role not in existing:
            offenders.append(f"role {role} does not exist")
    return Check.of(
        "layout.as_planned",
        offenders=offenders,
        ok=f"{_count(len(layout.tables), 'table')}, {_count(len(layout.schemas), 'schema')}, "
        f"{_count(len(layout.roles), 'role')} and every new table are where the plan says, "
        "and nowhere else",
        failed="the database after migration is not laid out as the plan says",
    )


def _same_old_columns(conn: Conn | None, was: Relation, now: Relation) -> bool:
    """A table that only gained columns: are the columns it had unchanged?"""
    old = [c.name for c in was.columns]
    if conn is None or not set(old) < {c.name for c in now.columns}:
        return False
    again = table_checksum(conn, schema=now.schema, table=now.name, only=old)
    return (again.rows, again.digest) == (was.rows, was.checksum)


def check_data(
    layout: Layout, before: Fingerprint, after: Fingerprint, conn: Conn | None = None
) -> Check:
    """Every row of every table, by count and checksum. With ``conn`` (the database
    ``after`` was read from, unchanged since), a table that gained columns is
    compared on the columns it had."""
    offenders = []
    for qualified, table in sorted(before.tables.items()):
        now = after.tables.get(_counterpart(layout, before, after, qualified))
        if now is None:
            continue  # check_layout names a listed table, check_table_parts any other
        if table.rows != now.rows:
            offenders.append(
                f"`{now.qualified}`: {table.rows:,} rows before, {now.rows:,} after"
                if table.rows is not None and now.rows is not None
                else f"`{now.qualified}`: row count not comparable"
            )
        elif table.checksum != now.checksum and not _same_old_columns(conn, table, now):
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


def _renames(before: Fingerprint, after: Fingerprint) -> dict[str, str]:
    """Objects that changed schema, new qualified name to old, as definitions print them.

    Definitions (defaults, constraints, indexes, triggers, policies) name tables,
    sequences, functions and types with their schema; a table that moved prints
    its new schema. Mapping the new names back lets "same definition" mean the
    same thing before and after a move, and nothing looser.
    """
    renames: dict[str, str] = {}
    kinds: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = [
        (before.tables, after.tables),
        (before.views, after.views),
        (before.sequences, after.sequences),
        (before.types, after.types),
    ]
    for old, new in kinds:
        gone: dict[str, list[Any]] = {}
        for key, obj in old.items():
            if key not in new:
                gone.setdefault(obj.name, []).append(obj)
        for key, obj in new.items():
            if key in old or len(gone.get(obj.name, [])) != 1:
                continue
            was = gone[obj.name][0]
            for form_new, form_old in _spellings(obj.schema, was.schema, obj.name):
                renames[form_new] = form_old
    for key, fn in after.functions.items():
        if key not in before.functions:
            same = [
                f
                for f in before.functions.values()
                if f.name == fn.name
                and f.arguments == fn.arguments
                and f.qualified not in after.functions
            ]
            if len(same) == 1:
                for form_new, form_old in _spellings(fn.schema, same[0].schema, fn.name):
                    renames[form_new] = form_old
    return renames


def _ident(name: str) -> str:
    """As PostgreSQL's quote_ident prints it, keywords aside."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _spellings(new_schema: str, old_schema: str, name: str) -> list[tuple[str, str]]:
    return [(f"{_ident(new_schema)}.{_ident(name)}", f"{_ident(old_schema)}.{_ident(name)}")]


def _normalized(text: str | None, renames: Mapping[str, str]) -> str | None:
    if text is None or not renames:
        return text
    pattern = _rename_pattern(tuple(sorted(renames, key=len, reverse=True)))
    return pattern.sub(lambda m: renames[m.group(0)], text)


@functools.cache
def _rename_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf'(?<![\w$."])(?:{alternatives})(?![\w$"])')


def _parts(table: Relation, renames: Mapping[str, str]) -> dict[str, str]:
    """Every part of a table that must survive a move, its definition in words."""

    def n(text: str | None) -> str:
        return str(_normalized(text, renames))

    parts: dict[str, str] = {
        "owner": table.owner,
        "options": ", ".join(table.options) or "none",
        "persistence": {"p": "permanent", "u": "unlogged"}.get(
            table.persistence, table.persistence
        ),
        "row-level security": f"{table.row_security} (forced: {table.force_row_security})",
        "partition key": n(table.partition_key),
        "partition bound": n(table.partition_bound),
    }
    for c in table.columns:
        parts[f"column {c.name}"] = (
            f"{n(c.type)}{' NOT NULL' if c.not_null else ''}"
            + (f" DEFAULT {n(c.default)}" if c.default is not None else "")
            + (f" GENERATED {c.identity} AS IDENTITY" if c.identity else "")
            + (f" GENERATED ALWAYS AS ({n(c.generated)}) STORED" if c.generated else "")
            + (f" COLLATE {c.collation}" if c.collation else "")
        )
    for k in table.constraints:
        # A foreign key's validity is foreign_keys.hold's finding, with its orphans; any
        # other constraint keeps NOT VALID here (see _not_valid).
        definition = n(k.definition)
        parts[f"constraint {k.name}"] = (
            definition.removesuffix(" NOT VALID") if k.type == "f" else definition
        )
    for i in table.indexes:
        parts[f"index {i.name}"] = n(i.definition)
    state = {"O": "enabled", "D": "DISABLED", "R": "replica only", "A": "always"}
    for t in table.triggers:
        parts[f"trigger {t.name}"] = f"{n(t.definition)} ({state.get(t.enabled, t.enabled)})"
    for r in table.rules:
        parts[f"rule {r.name}"] = f"{n(r.definition)} ({state.get(r.enabled, r.enabled)})"
    for p in table.policies:
        parts[f"policy {p.name}"] = (
            f"{p.command} {'permissive' if p.permissive else 'restrictive'} TO "
            f"{', '.join(p.roles)} USING ({n(p.using)}) WITH CHECK ({n(p.with_check)})"
        )
    return parts


_INTEGERS = ("smallint", "integer", "bigint")
_SIZED = re.compile(r"^(character varying|numeric)(?:\((\d+)(?:,(\d+))?\))?(\[\])?(.*)$")


def _widened(was: str, now: str) -> bool:
    """A column definition whose type only grew: every value it held fits as it was.

    varchar(n) to a longer varchar or to text, numeric(p,s) to more digits of the
    same scale or to numeric, smallint to integer to bigint; the rest of the
    definition (NOT NULL, default, collation) unchanged.
    """
    old_type, _, old_rest = was.partition(" ")
    new_type, _, new_rest = now.partition(" ")
    if old_type in _INTEGERS and new_type in _INTEGERS:
        return old_rest == new_rest and _INTEGERS.index(new_type) > _INTEGERS.index(old_type)
    m, n = _SIZED.match(was), _SIZED.match(now)
    if m is None:
        return False
    if n is None:  # varchar(n) to text
        rest = m[5].replace("::character varying", "::text")
        return m[1] == "character varying" and not m[4] and now == "text" + rest
    if m[1] != n[1] or m[4] != n[4] or m[5] != n[5]:
        return False
    if n[2] is None:
        return m[2] is not None
    if m[2] is None or (m[1] == "numeric" and m[3] != n[3]):
        return False
    return int(n[2]) > int(m[2])


def _validated(conn: Conn | None, table: Relation, name: str) -> str:
    """Whether today's rows satisfy a NOT VALID constraint: validated in a scratch
    transaction that is rolled back, so nothing of it stays."""
    if conn is None:
        return "today's rows were not checked against it"
    statement = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
        sql.Identifier(table.schema, table.name), sql.Identifier(name)
    )
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except psycopg.Error as exc:
        return f"today's rows violate it ({(exc.diag.message_primary or str(exc)).strip()})"
    return "today's rows satisfy it, so VALIDATE CONSTRAINT in the step costs only a scan"


def _not_valid(conn: Conn | None, was: Relation, now: Relation) -> list[str]:
    """Constraints (foreign keys aside) the migration made NOT VALID, or added NOT VALID
    and never validated: PostgreSQL no longer vouches that every row satisfies them."""
    before = {k.name: k for k in was.constraints}
    found = []
    for k in now.constraints:
        if k.validated or k.type == "f":
            continue
        old = before.get(k.name)
        if old is not None and not old.validated:
            continue  # NOT VALID before the migration too: not the plan's doing
        what = (
            "was made NOT VALID" if old is not None else "was added NOT VALID and never validated"
        )
        found.append(
            f"`{now.qualified}`: constraint {k.name} {what}: {_validated(conn, now, k.name)}"
        )
    return found


def _unpublished(layout: Layout, before: Fingerprint, after: Fingerprint) -> list[str]:
    """A table a publication published before the migration, and no longer: its changes
    stop reaching that publication's subscribers (a CDC pipeline, an analytics replica)
    without an error anywhere. ``FOR TABLES IN SCHEMA`` loses every table moved out."""
    found = []
    for name, publication in sorted(before.publications.items()):
        now = after.publications.get(name)
        if now is None:
            found.append(f"publication {name} is gone: its subscribers get no change any more")
            continue
        lost = [
            target
            for qualified in publication.tables
            if qualified in before.tables
            and (target := _counterpart(layout, before, after, qualified)) not in now.tables
        ]
        for target in lost:
            found.append(
                f"`{target}`: no longer in publication {name}"
                + (f" (FOR TABLES IN SCHEMA {', '.join(now.schemas)})" if now.schemas else "")
                + ": its changes stop reaching the publication's subscribers"
            )
        if now.operations != publication.operations:
            found.append(
                f"publication {name}: publishes {now.operations or 'nothing'} after, "
                f"{publication.operations} before"
            )
    return found


def _domains_loosened(before: Fingerprint, after: Fingerprint) -> list[str]:
    """A domain's NOT NULL, CHECK constraints and base type guard every column of it as a
    table's own constraints do; one the migration dropped or changed lets through what it
    refused. Followed by name where the plan moved the domain to another schema."""
    moved = {d.name: d for d in after.types.values() if d.kind == "d"}
    found = []
    for key, was in sorted(before.types.items()):
        if was.kind != "d":
            continue
        now = after.types.get(key) or moved.get(was.name)
        if now is None:
            continue  # gone with its columns: their tables' finding
        parts = {_domain_part(x): x for x in now.definition}
        for part in was.definition:
            other = parts.get(_domain_part(part))
            if other is None:
                found.append(f"domain `{was.qualified}`: {part} is gone")
            elif other != part:
                found.append(f"domain `{was.qualified}`: {part} changed to {other}")
    return found


def _domain_part(text: str) -> str:
    """What a domain's part is (``BASE``, ``NOT NULL``, ``DEFAULT``, ``CONSTRAINT name``)."""
    words = text.split(" ", 2)
    return " ".join(words[:2]) if words[0] in ("CONSTRAINT", "NOT") else words[0]


def _unvacuumed(options: Iterable[str]) -> bool:
    """A table's storage options are tuning (fillfactor, autovacuum thresholds), except
    switching autovacuum off: dead rows pile up and only wraparound vacuums freeze it."""
    settings = dict(o.partition("=")[::2] for o in options)
    return any(
        settings.get(name, "on").lower() in ("false", "off", "no", "0", "f", "n")
        for name in ("autovacuum_enabled", "toast.autovacuum_enabled")
    )


_SILENT = {
    "D": "disabled: it never fires",
    "R": "to fire on replicas only (ENABLE REPLICA TRIGGER): it never fires for the "
    "application's sessions (session_replication_role origin)",
}


def check_table_parts(
    layout: Layout, before: Fingerprint, after: Fingerprint, conn: Conn | None = None
) -> Check:
    """Every table, listed or not, kept its parts, their definitions and states.

    Parts may be added (a plan adds an audit trigger, an index, a column today's
    INSERTs need not name); none may go or change. A column added NOT NULL without
    a default breaks every INSERT that leaves it out. A constraint made NOT VALID,
    or added NOT VALID and never validated, is a finding; with ``conn`` (the
    migrated database) it says whether today's rows violate it. A table the layout
    does not list that is gone or moved is named too.
    """
    offenders: list[str] = []
    added: list[str] = []
    triggers: list[str] = []
    tuned: list[str] = []
    renames = _renames(before, after)
    for qualified in sorted(before.tables):
        target = _counterpart(layout, before, after, qualified)
        if target not in after.tables:
            if qualified not in layout.tables:
                offenders.append(_unlisted_fate(before, after, qualified))
            continue
        was = _parts(before.tables[qualified], {})
        now = _parts(after.tables[target], renames)
        for key in sorted(was.keys() - now.keys()):
            offenders.append(f"`{target}`: {key} is gone")
        # An added trigger is named: whether it lets the application's writes through
        # is tried by privileges.tried's probes (and the traffic), not read here. One
        # added switched off is a finding: what the plan adds it for never happens.
        for trigger in after.tables[target].triggers:
            if f"trigger {trigger.name}" in was:
                continue
            triggers.append(f"{trigger.name} on {target}")
            if trigger.enabled in _SILENT:
                offenders.append(
                    f"`{target}`: trigger {trigger.name} was added {_SILENT[trigger.enabled]}"
                )
        for column in after.tables[target].columns:
            if f"column {column.name}" in was:
                continue
            if (
                column.not_null
                and column.default is None
                and not (column.identity or column.generated)
            ):
                offenders.append(
                    f"`{target}`: column {column.name} was added NOT NULL without a default, "
                    "so every INSERT that leaves it out (all of today's) fails"
                )
            else:
                added.append(f"`{target}`.{column.name}")
        offenders += _not_valid(conn, before.tables[qualified], after.tables[target])
        for key in sorted(was.keys() & now.keys()):
            if was[key] == now[key]:
                continue
            if key.startswith("constraint ") and now[key] == f"{was[key]} NOT VALID":
                continue  # said above, with whether today's rows satisfy it
            if key.startswith("column ") and _widened(was[key], now[key]):
                added.append(f"`{target}`.{key.removeprefix('column ')} widened to {now[key]}")
                continue
            if key == "options" and not _unvacuumed(after.tables[target].options):
                tuned.append(f"`{target}` ({now[key]})")
                continue
            offenders.append(f"`{target}`: {key} changed from {was[key]} to {now[key]}")
    offenders += _domains_loosened(before, after)
    offenders += _unpublished(layout, before, after)
    gained = (
        f"; columns added or widened, no value or write of today's affected: {', '.join(added)}"
        if added
        else ""
    )
    if tuned:
        gained += "; storage options set, which no value or write depends on: " + ", ".join(tuned)
    if triggers:
        gained += "; triggers added (privileges.tried tries writes through them): " + ", ".join(
            triggers
        )
    return Check.of(
        "tables.intact",
        offenders=offenders,
        ok=f"all {len(before.tables)} tables kept their columns (types, defaults, identity, "
        "collations), constraints, indexes, triggers (and whether they fire), policies, "
        f"owners and options{gained}",
        failed="tables lost or changed columns, constraints, indexes, triggers, policies, "
        "owners or options",
    )


def _column_of(owned_by: str | None) -> tuple[str, ...] | None:
    """``table.column`` of a sequence's owner; where the table is, check_layout says."""
    return None if owned_by is None else tuple(owned_by.split(".")[-2:])


def _next(seq: Sequence) -> int:
    return seq.last_value + seq.increment if seq.is_called else seq.last_value


def _counting_back(was: Sequence, now: Sequence) -> list[str]:
    """What makes a sequence, at the same value, hand out numbers it handed out before
    the migration or none at all: counting the other way, cycling, no room left."""
    found = []
    if (was.increment > 0) != (now.increment > 0):
        found.append(
            f"INCREMENT BY {now.increment} after, {was.increment} before: it now counts "
            "back over the values it handed out"
        )
    if now.cycle and not was.cycle:
        found.append(
            "CYCLE after, NO CYCLE before: at its last value it starts again, handing out "
            "values it handed out"
        )
    fits = was.minimum <= _next(was) <= was.maximum
    if fits and not now.minimum <= _next(now) <= now.maximum:
        found.append(
            f"its next value {_next(now):,} is outside MINVALUE {now.minimum:,} .. MAXVALUE "
            f"{now.maximum:,} after ({was.minimum:,} .. {was.maximum:,} before): the next "
            "nextval fails"
        )
    return found


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
        elif seq.owned_by is not None and _column_of(now.owned_by) != _column_of(seq.owned_by):
            # Not owned by its column any more: dropping the table leaves it behind, and
            # an identity or serial column may now draw from another sequence.
            offenders.append(
                f"`{now.qualified}`: owned by {now.owned_by or 'no column'} after, "
                f"{seq.owned_by} before"
            )
        else:
            offenders += [f"`{now.qualified}`: {why}" for why in _counting_back(seq, now)]
    return Check.of(
        "sequences.not_reset",
        offenders=offenders,
        ok=f"all {_count(len(before.sequences), 'sequence')} kept counting from where they were"
        if before.sequences
        else "there are no sequences to keep counting",
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
    kept_roles: Collection[str] = (),
) -> Check:
    """Two fingerprints that must be equal; each difference is an offender.

    ``kept_roles`` are roles the plan declares it leaves behind on purpose (roles
    are cluster-wide: dropping one other databases use is worse than keeping it);
    their being there is reported in the verdict, not as a difference.
    """
    differences = diff(expected, actual, ignore=ignore)
    kept = sorted(
        d.object
        for d in differences
        if d.kind == "role" and d.object in kept_roles and d.object not in expected.roles
    )
    offenders = [str(d) for d in differences if not (d.kind == "role" and d.object in kept)]
    if kept:
        ok = f"{ok} (roles kept as the plan declares: {', '.join(kept)})"
    return Check.of(name, offenders=offenders, ok=ok, failed=failed)
