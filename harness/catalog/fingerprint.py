"""The structural fingerprint of a database: what pg_catalog says, by name, sorted.

A fingerprint is compared between a database and its rolled-back self, a
replica, or a restored copy. Those differ in OIDs, so everything is recorded by
name; ACLs are sorted aclitem text, with a NULL ACL replaced by the default it
stands for, so ``GRANT`` followed by ``REVOKE`` compares equal to never granting.
Everything is read in one REPEATABLE READ, READ ONLY transaction (one snapshot,
and it works on a hot standby) with ``search_path`` empty, so every name that
pg_get_*def prints is schema-qualified and does not depend on the caller's session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from harness.catalog import checksum
from harness.errors import UsageError

__all__ = [
    "Column",
    "Constraint",
    "Database",
    "DefaultPrivilege",
    "Extension",
    "Fingerprint",
    "Function",
    "Index",
    "Policy",
    "Relation",
    "Role",
    "Schema",
    "Sequence",
    "Trigger",
    "TypeDef",
    "fingerprint",
    "parse_aclitem",
]

FORMAT = 1

Acl = tuple[str, ...]


class _Qualified(Protocol):
    @property
    def qualified(self) -> str: ...


_Q = TypeVar("_Q", bound=_Qualified)


@dataclass(frozen=True)
class Column:
    name: str
    position: int
    type: str
    not_null: bool
    default: str | None
    identity: str | None  # "always" or "by default"
    generated: str | None  # the expression of a GENERATED ALWAYS AS (...) STORED column
    collation: str | None  # only when it differs from the type's own
    acl: Acl  # column-level grants; empty when there are none


@dataclass(frozen=True)
class Constraint:
    name: str
    type: str  # pg_constraint.contype: p, f, u, c, x, t
    definition: str
    validated: bool


@dataclass(frozen=True)
class Index:
    name: str
    definition: str
    valid: bool  # false after a failed CREATE INDEX CONCURRENTLY


@dataclass(frozen=True)
class Trigger:
    name: str
    definition: str
    enabled: str  # pg_trigger.tgenabled: O (on), D (off), R (replica only), A (always)


@dataclass(frozen=True)
class Policy:
    name: str
    command: str  # pg_policy.polcmd: r, a, w, d or * (all)
    permissive: bool
    roles: tuple[str, ...]
    using: str | None
    with_check: str | None


@dataclass(frozen=True)
class Relation:
    """A table, partitioned or foreign table, view or materialized view, with its parts."""

    schema: str
    name: str
    kind: str  # pg_class.relkind: r, p, f, v, m
    owner: str
    acl: Acl
    persistence: str  # pg_class.relpersistence: p (permanent), u (unlogged)
    row_security: bool
    force_row_security: bool
    options: tuple[str, ...]
    inherits: tuple[str, ...]
    partition_bound: str | None
    partition_key: str | None
    definition: str | None  # the query of a view or materialized view
    populated: bool
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...]
    indexes: tuple[Index, ...]
    triggers: tuple[Trigger, ...]
    policies: tuple[Policy, ...]
    rows: int | None  # None when data was not read (data=False, unlogged on a standby)
    checksum: str | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Sequence:
    schema: str
    name: str
    type: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owner: str
    acl: Acl
    owned_by: str | None  # "schema.table.column" of a serial or identity column
    last_value: int
    is_called: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    arguments: str  # identity arguments: what tells overloads apart
    kind: str  # pg_proc.prokind: f, p, a, w
    language: str
    definition: str
    owner: str
    acl: Acl
    config: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}({self.arguments})"


@dataclass(frozen=True)
class TypeDef:
    schema: str
    name: str
    kind: str  # pg_type.typtype: e (enum), d (domain), c (composite), r (range), b (base)
    owner: str
    acl: Acl
    definition: tuple[str, ...]  # enum labels in order, attributes, domain parts

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Schema:
    name: str
    owner: str
    acl: Acl


@dataclass(frozen=True)
class DefaultPrivilege:
    role: str
    schema: str | None  # None: for objects the role creates in any schema
    object_type: str  # pg_default_acl.defaclobjtype: r, S, f, T, n
    acl: Acl


@dataclass(frozen=True)
class Extension:
    name: str
    version: str
    schema: str
    owner: str


@dataclass(frozen=True)
class Role:
    name: str
    superuser: bool
    inherit: bool
    create_role: bool
    create_db: bool
    login: bool
    replication: bool
    bypass_rls: bool
    connection_limit: int
    member_of: tuple[str, ...]


@dataclass(frozen=True)
class Database:
    """The current database's own properties; its name is left out on purpose (copies differ)."""

    owner: str
    acl: Acl
    encoding: str
    collate: str
    ctype: str


@dataclass(frozen=True)
class Fingerprint:
    """Everything compared, keyed by qualified name (``schema.name``; functions add arguments).

    ``settings`` maps a scope (``database``, ``role NAME``, ``role NAME in database``)
    to ``{setting: value}`` from pg_db_role_setting; ``roles`` holds every role
    that owns, is granted, or has settings on something recorded here.
    """

    database: Database
    schemas: Mapping[str, Schema]
    tables: Mapping[str, Relation]
    views: Mapping[str, Relation]
    sequences: Mapping[str, Sequence]
    functions: Mapping[str, Function]
    types: Mapping[str, TypeDef]
    default_privileges: Mapping[str, DefaultPrivilege]
    extensions: Mapping[str, Extension]
    settings: Mapping[str, Mapping[str, str]]
    roles: Mapping[str, Role]

    def table_schema(self, name: str) -> list[str]:
        """The schemas holding a table called ``name``: where did ``suppliers`` go?"""
        return sorted(t.schema for t in self.tables.values() if t.name == name)

    def row_count(self, qualified: str) -> int | None:
        """Rows of a table or materialized view; None where data was not read."""
        relation = self.tables.get(qualified) or self.views.get(qualified)
        if relation is None:
            known = ", ".join(sorted(self.tables)) or "none"
            raise KeyError(f"no table or view {qualified} in this fingerprint (tables: {known})")
        return relation.rows

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        if data.get("format") != FORMAT:
            raise UsageError(
                f"fingerprint format {data.get('format')!r} is not {FORMAT}; "
                "take the fingerprint again with this version of pgcutover"
            )
        return cls(
            database=_load(Database, data["database"]),
            settings={k: dict(v) for k, v in data["settings"].items()},
            **{name: {k: _load(kind, v) for k, v in data[name].items()} for name, kind in _MAPS},
        )


_MAPS: tuple[tuple[str, type[Any]], ...] = (
    ("schemas", Schema),
    ("tables", Relation),
    ("views", Relation),
    ("sequences", Sequence),
    ("functions", Function),
    ("types", TypeDef),
    ("default_privileges", DefaultPrivilege),
    ("extensions", Extension),
    ("roles", Role),
)
_PARTS: dict[str, type[Any]] = {
    "columns": Column,
    "constraints": Constraint,
    "indexes": Index,
    "triggers": Trigger,
    "policies": Policy,
}


def _load(kind: type[Any], data: Mapping[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for f in fields(kind):
        value = data[f.name]
        if kind is Relation and f.name in _PARTS:
            value = tuple(_load(_PARTS[f.name], part) for part in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return kind(**values)


def parse_aclitem(item: str) -> tuple[str, str, str]:
    """``grantee=privileges/grantor`` into its parts; the empty grantee becomes PUBLIC.

    aclitem output double-quotes a role name holding anything but letters,
    digits and underscores (acl.c ``putid``), doubling embedded quotes.
    """
    grantee, pos = _read_role(item, 0)
    privileges, _, rest = item[pos + 1 :].partition("/")
    grantor, _ = _read_role(rest, 0)
    return grantee or "PUBLIC", privileges, grantor


def _read_role(text: str, pos: int) -> tuple[str, int]:
    if not text.startswith('"', pos):
        end = pos
        while end < len(text) and text[end] not in "=/":
            end += 1
        return text[pos:end], end
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        if text[i] == '"':
            if text.startswith('"', i + 1):
                out.append('"')
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise ValueError(f"unterminated quoted role name in aclitem {text!r}")


def _acl_roles(acl: Iterable[str]) -> set[str]:
    roles: set[str] = set()
    for item in acl:
        grantee, _, grantor = parse_aclitem(item)
        roles.update((grantee, grantor))
    return roles - {"PUBLIC"}


def fingerprint(
    conn: psycopg.Connection[Any],
    *,
    data: bool = True,
    exclude_schemas: Iterable[str] = ("pgcutover",),
) -> Fingerprint:
    """Read the fingerprint of the database ``conn`` is connected to.

    ``conn`` must be idle (not inside a transaction): the reading needs its own
    snapshot and session settings, and rolls back everything it set when done.
    With ``data`` every table and populated materialized view is checksummed
    in the server, one query each; unlogged tables cannot be read on a standby
    and get ``rows=None`` there.
    """
    status = conn.info.transaction_status
    if status != TransactionStatus.IDLE:
        raise UsageError(
            f"fingerprint needs an idle connection, found it {status.name}; "
            "commit or roll back first (the fingerprint takes its own snapshot)"
        )
    params = {
        "excluded": sorted(set(exclude_schemas)),
        "native": list(checksum.NATIVE_HASH_TYPES),
    }
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute(checksum.SESSION)
        return _read(cur, params=params, data=data)


# Catalog queries: one per kind of object. {ns} keeps user schemas only; the
# NOT EXISTS (... deptype = 'e') clauses leave out what an extension created,
# which the extension's own row (name, version) already stands for.
_NS = sql.SQL(
    "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
    " AND n.nspname <> ALL(%(excluded)s::text[])"
)


def _acl(column: str, kind: str, owner: str) -> sql.Composed:
    """Sorted aclitem text; a NULL ACL stands for the default, so spell the default out."""
    return sql.SQL(
        'ARRAY(SELECT x::text COLLATE "C"'
        " FROM unnest(coalesce({}, acldefault({}, {}))) x ORDER BY 1)"
    ).format(sql.SQL(column), sql.Literal(kind), sql.SQL(owner))


_DATABASE = sql.SQL("""
SELECT pg_get_userbyid(d.datdba)::text,
  {acl},
  pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, pg_is_in_recovery()
FROM pg_database d WHERE d.datname = current_database()""").format(
    acl=_acl("d.datacl", "d", "d.datdba")
)
_SCHEMAS = sql.SQL("""
SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text,
  {acl}
FROM pg_namespace n WHERE {ns} ORDER BY 1""").format(
    ns=_NS, acl=_acl("n.nspacl", "n", "n.nspowner")
)
_RELATIONS = sql.SQL("""
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, pg_get_userbyid(c.relowner)::text,
  {acl},
  c.relpersistence::text, c.relrowsecurity, c.relforcerowsecurity,
  coalesce(c.reloptions, ARRAY[]::text[]),
  ARRAY(SELECT i.inhparent::regclass::text COLLATE "C" FROM pg_inherits i
        WHERE i.inhrelid = c.oid ORDER BY 1),
  pg_get_expr(c.relpartbound, c.oid), CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2, 3""").format(ns=_NS, acl=_acl("c.relacl", "r", "c.relowner"))
# The position is the rank among live columns, not attnum: a restored copy
# has no dropped columns, so its attnums close up. "native" is checksum.py's test.
_COLUMNS = sql.SQL("""
SELECT a.attrelid, a.attname::text,
  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)::int,
  format_type(a.atttypid, a.atttypmod), a.attnotnull,
  CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
  CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  CASE WHEN a.attcollation <> t.typcollation
    THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
  ARRAY(SELECT x::text COLLATE "C" FROM unnest(a.attacl) x ORDER BY 1),
  et.typnamespace = 'pg_catalog'::regnamespace AND et.typname::text = ANY(%(native)s)
    AND (a.attcollation = 0 OR co.collisdeterministic)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type et ON et.oid = CASE WHEN t.typelem <> 0 AND EXISTS (SELECT FROM pg_type e
  WHERE e.oid = t.typelem AND e.typarray = t.oid) THEN t.typelem ELSE t.oid END
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {ns}
ORDER BY a.attrelid, a.attnum""").format(ns=_NS)
_CONSTRAINTS = sql.SQL("""
SELECT k.conrelid, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid), k.convalidated
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=_NS)
_INDEXES = sql.SQL("""
SELECT i.indrelid, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisvalid
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=_NS)
_TRIGGERS = sql.SQL("""
SELECT g.tgrelid, g.tgname::text, pg_get_triggerdef(g.oid), g.tgenabled::text
FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal AND {ns}""").format(ns=_NS)
_POLICIES = sql.SQL("""
SELECT p.polrelid, p.polname::text, p.polcmd::text, p.polpermissive,
  ARRAY(SELECT (CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END) COLLATE "C"
        FROM unnest(p.polroles) r ORDER BY 1),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=_NS)
_SEQUENCES = sql.SQL("""
SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
  s.seqmin, s.seqmax, s.seqcache, s.seqcycle, pg_get_userbyid(c.relowner)::text,
  {acl},
  (SELECT dn.nspname || '.' || dc.relname || '.' || a.attname FROM pg_depend d
   JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace
   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
     AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2""").format(ns=_NS, acl=_acl("c.relacl", "s", "c.relowner"))
# pg_get_functiondef refuses aggregates; describe those from pg_aggregate. Range
# constructors depend on their type (deptype 'i') and come and go with it.
_FUNCTIONS = sql.SQL("""
SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
  p.prokind::text, l.lanname::text,
  CASE WHEN p.prokind = 'a' THEN (SELECT concat_ws(' ', 'AGGREGATE RETURNS',
      pg_get_function_result(p.oid), 'SFUNC', g.aggtransfn::text,
      'STYPE', format_type(g.aggtranstype, NULL),
      'FINALFUNC ' || nullif(g.aggfinalfn::oid, 0)::regproc::text,
      'COMBINEFUNC ' || nullif(g.aggcombinefn::oid, 0)::regproc::text,
      'INITCOND ' || g.agginitval) FROM pg_aggregate g WHERE g.aggfnoid = p.oid)
    ELSE pg_get_functiondef(p.oid) END,
  pg_get_userbyid(p.proowner)::text,
  {acl},
  coalesce(p.proconfig, ARRAY[]::text[])
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
ORDER BY 1, 2, 3""").format(ns=_NS, acl=_acl("p.proacl", "f", "p.proowner"))
# Array types and the row types of tables come with their owners; leave them out.
_TYPES = sql.SQL("""
SELECT n.nspname::text, t.typname::text, t.typtype::text, pg_get_userbyid(t.typowner)::text,
  {acl},
  CASE t.typtype
  WHEN 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
    WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
  WHEN 'c' THEN ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum)
  WHEN 'r' THEN ARRAY(SELECT x FROM pg_range r, LATERAL (VALUES
    ('SUBTYPE ' || format_type(r.rngsubtype, NULL)),
    ('MULTIRANGE ' || format_type(r.rngmultitypid, NULL))) v(x) WHERE r.rngtypid = t.oid)
  WHEN 'd' THEN ARRAY['BASE ' || format_type(t.typbasetype, t.typtypmod)]
    || ARRAY(SELECT 'NOT NULL' WHERE t.typnotnull)
    || ARRAY(SELECT 'DEFAULT ' || pg_get_expr(t.typdefaultbin, 0) WHERE t.typdefaultbin IS NOT NULL)
    || ARRAY(SELECT 'CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
      FROM pg_constraint k WHERE k.contypid = t.oid ORDER BY k.conname)
  ELSE ARRAY['INPUT ' || t.typinput::text, 'OUTPUT ' || t.typoutput::text] END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {ns} AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT FROM pg_type a WHERE a.typarray = t.oid)
  AND NOT EXISTS (SELECT FROM pg_depend d
    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY 1, 2""").format(ns=_NS, acl=_acl("t.typacl", "T", "t.typowner"))
_DEFAULT_ACLS = sql.SQL("""
SELECT pg_get_userbyid(d.defaclrole)::text, n.nspname::text, d.defaclobjtype::text,
  ARRAY(SELECT x::text COLLATE "C" FROM unnest(d.defaclacl) x ORDER BY 1)
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
WHERE d.defaclnamespace = 0 OR ({ns})""").format(ns=_NS)
_EXTENSIONS = sql.SQL("""
SELECT e.extname::text, e.extversion, n.nspname::text, pg_get_userbyid(e.extowner)::text
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE n.nspname <> ALL(%(excluded)s::text[]) ORDER BY 1""")
# Rows for this database, and for every database (setdatabase = 0); the
# database's name is left out of the scope so a restored copy compares equal.
_SETTINGS = sql.SQL("""
SELECT CASE WHEN s.setrole = 0 THEN 'database'
  ELSE 'role ' || pg_get_userbyid(s.setrole)
    || CASE WHEN s.setdatabase <> 0 THEN ' in database' ELSE '' END END,
  CASE WHEN s.setrole <> 0 THEN pg_get_userbyid(s.setrole)::text END, s.setconfig
FROM pg_db_role_setting s
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))""")
_ROLES = sql.SQL("""
SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
  r.rolreplication, r.rolbypassrls, r.rolconnlimit,
  ARRAY(SELECT g.rolname::text COLLATE "C" FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s::text[]) ORDER BY 1""")


def _fetch(
    cur: psycopg.Cursor[Any], query: sql.SQL | sql.Composed, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows with every array turned into a tuple, ready to unpack into a frozen dataclass."""
    cur.execute(query, params)
    return [tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in cur.fetchall()]


def _read(cur: psycopg.Cursor[Any], *, params: dict[str, Any], data: bool) -> Fingerprint:
    *db, in_recovery = _fetch(cur, _DATABASE, params)[0]
    database = Database(*db)
    schemas = {r[0]: Schema(*r) for r in sorted(_fetch(cur, _SCHEMAS, params))}

    parts: dict[int, dict[str, list[Any]]] = {}
    hashable: dict[int, list[tuple[str, bool]]] = {}
    for oid, *attribute, native in _fetch(cur, _COLUMNS, params):
        parts.setdefault(oid, {}).setdefault("columns", []).append(Column(*attribute))
        hashable.setdefault(oid, []).append((attribute[0], native))
    for name, query in (
        ("constraints", _CONSTRAINTS),
        ("indexes", _INDEXES),
        ("triggers", _TRIGGERS),
        ("policies", _POLICIES),
    ):
        for oid, *rest in _fetch(cur, query, params):
            parts.setdefault(oid, {}).setdefault(name, []).append(_PARTS[name](*rest))

    relations: list[Relation] = []
    for oid, *head in _fetch(cur, _RELATIONS, params):
        schema, name, kind, persistence, populated = head[0], head[1], head[2], head[5], head[-1]
        rows = digest = None
        # Unlogged tables have no data on a standby: reading one there is an error.
        if data and populated and kind in "rm" and not (in_recovery and persistence == "u"):
            rows, digest = checksum.run(cur, schema=schema, table=name, columns=hashable.get(oid))
        mine = parts.get(oid, {})
        children = (tuple(sorted(mine.get(p, []), key=_order)) for p in _PARTS)
        relations.append(Relation(*(*head, *children, rows, digest)))

    seq_rows = _fetch(cur, _SEQUENCES, params)
    values = checksum.sequence_values(cur, [(r[0], r[1]) for r in seq_rows])
    sequences = [Sequence(*(*r, *values[r[0], r[1]])) for r in seq_rows]
    functions = [Function(*r) for r in _fetch(cur, _FUNCTIONS, params)]
    types = [TypeDef(*r) for r in _fetch(cur, _TYPES, params)]
    default_privileges = [DefaultPrivilege(*r) for r in _fetch(cur, _DEFAULT_ACLS, params)]
    extensions = {r[0]: Extension(*r) for r in sorted(_fetch(cur, _EXTENSIONS, params))}
    settings: dict[str, dict[str, str]] = {}
    referenced = {database.owner}
    for scope, role, config in _fetch(cur, _SETTINGS, params):
        referenced |= {role} - {None}
        for item in config:
            key, _, value = item.partition("=")
            settings.setdefault(scope, {})[key] = value

    owned: list[Any] = [*schemas.values(), *relations, *sequences, *functions, *types, database]
    for obj in owned:
        referenced |= _acl_roles(obj.acl) | {obj.owner}
    for rel in relations:
        for column in rel.columns:
            referenced |= _acl_roles(column.acl)
        for policy in rel.policies:
            referenced |= set(policy.roles) - {"PUBLIC"}
    for d in default_privileges:
        referenced |= _acl_roles(d.acl) | {d.role}
    referenced |= {e.owner for e in extensions.values()}
    roles = {r[0]: Role(*r) for r in sorted(_fetch(cur, _ROLES, {"roles": sorted(referenced)}))}

    return Fingerprint(
        database=database,
        schemas=schemas,
        tables=_by_name(r for r in relations if r.kind in "rpf"),
        views=_by_name(r for r in relations if r.kind in "vm"),
        sequences=_by_name(sequences),
        functions=_by_name(functions),
        types=_by_name(types),
        default_privileges={
            f"{d.role}/{d.schema or '*'}/{d.object_type}": d
            for d in sorted(
                default_privileges, key=lambda d: (d.role, d.schema or "", d.object_type)
            )
        },
        extensions=extensions,
        settings={k: dict(sorted(v.items())) for k, v in sorted(settings.items())},
        roles=roles,
    )


def _by_name(objects: Iterable[_Q]) -> dict[str, _Q]:
    """Keyed by qualified name in code point order, whatever the database's collation."""
    return {o.qualified: o for o in sorted(objects, key=lambda o: o.qualified)}


def _order(part: Any) -> tuple[int, str]:
    return (part.position, "") if isinstance(part, Column) else (0, part.name)
