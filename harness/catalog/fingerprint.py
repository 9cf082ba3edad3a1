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

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from harness.catalog import _queries as Q
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
class Rule:
    name: str
    definition: str  # pg_get_ruledef: CREATE RULE … DO [INSTEAD] …
    enabled: str  # pg_rewrite.ev_enabled: O (on), D (off), R (replica only), A (always)


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
    rules: tuple[Rule, ...] = ()  # a view's own _RETURN rule left out

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
    #: when its password stops working (text, in the fingerprint's UTC); None: never
    valid_until: str | None = None


@dataclass(frozen=True)
class Database:
    """The current database's own properties; its name is left out on purpose (copies differ)."""

    owner: str
    acl: Acl
    encoding: str
    collate: str
    ctype: str
    #: CONNECTION LIMIT (-1: none) and ALLOW_CONNECTIONS
    connection_limit: int = -1
    allow_connections: bool = True


@dataclass(frozen=True)
class Publication:
    """What logical replication's subscribers (a CDC pipeline, an analytics replica) get."""

    name: str
    owner: str
    all_tables: bool
    operations: str  # "insert, update, delete, truncate", those it publishes
    via_root: bool
    schemas: tuple[str, ...]  # FOR TABLES IN SCHEMA
    tables: tuple[str, ...]  # every table it publishes in effect, qualified


@dataclass(frozen=True)
class Fingerprint:
    """Everything compared, keyed by qualified name (``schema.name``; functions add arguments).

    ``settings`` maps a scope (``database``, ``role NAME``, ``role NAME in database``)
    to ``{setting: value}`` from pg_db_role_setting; ``roles`` holds every role of
    the cluster but the built-in ``pg_*`` ones (and any built-in one that owns, is
    granted, or has settings on something recorded here).
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
    publications: Mapping[str, Publication] = field(default_factory=dict)

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
            # a collection added later (publications) is empty in a fingerprint saved before
            **{
                name: {k: _load(kind, v) for k, v in data.get(name, {}).items()}
                for name, kind in _MAPS
            },
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
    ("publications", Publication),
)
_PARTS: dict[str, type[Any]] = {
    "columns": Column,
    "constraints": Constraint,
    "indexes": Index,
    "triggers": Trigger,
    "policies": Policy,
    "rules": Rule,
}


def _load(kind: type[Any], data: Mapping[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for f in fields(kind):
        if f.name not in data and f.default is not MISSING:
            continue  # a field added later: a fingerprint saved before keeps its default
        value = data[f.name]
        if kind is Relation and f.name in _PARTS:
            value = tuple(_load(_PARTS[f.name], part) for part in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return kind(**values)


#: aclitem's letters, as ``aclexplode`` and the ACL's text spell them.
ACL_PRIVILEGES = {
    "r": "SELECT",
    "a": "INSERT",
    "w": "UPDATE",
    "d": "DELETE",
    "D": "TRUNCATE",
    "x": "REFERENCES",
    "t": "TRIGGER",
    "X": "EXECUTE",
    "U": "USAGE",
    "C": "CREATE",
    "c": "CONNECT",
    "T": "TEMPORARY",
    "m": "MAINTAIN",
    "s": "SET",
    "A": "ALTER SYSTEM",
}


def acl_grants(acl: Iterable[str]) -> Iterator[tuple[str, str, bool]]:
    """Each (grantee, privilege, with grant option) an ACL gives: ``*`` marks the option."""
    for item in acl:
        grantee, letters, _ = parse_aclitem(item)
        for i, letter in enumerate(letters):
            if letter != "*":
                yield grantee, ACL_PRIVILEGES.get(letter, letter), letters[i + 1 : i + 2] == "*"


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


def _settings_by_scope(rows: Iterable[tuple[Any, ...]]) -> dict[str, dict[str, str]]:
    """``Q.SETTINGS`` rows as ``{"database": {...}, "role app in database": {...}}``."""
    settings: dict[str, dict[str, str]] = {}
    for scope, _role, config in rows:
        for item in config or ():
            key, _, value = str(item).partition("=")
            settings.setdefault(str(scope), {})[key] = value
    return settings


def read_settings(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """The database's and its roles' settings now, as a fingerprint holds them."""
    return _settings_by_scope(conn.execute(Q.SETTINGS).fetchall())


def _fetch(
    cur: psycopg.Cursor[Any], query: sql.SQL | sql.Composed, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows with every array turned into a tuple, ready to unpack into a frozen dataclass."""
    cur.execute(query, params)
    return [tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in cur.fetchall()]


def _read(cur: psycopg.Cursor[Any], *, params: dict[str, Any], data: bool) -> Fingerprint:
    *db, in_recovery = _fetch(cur, Q.DATABASE, params)[0]
    database = Database(*db)
    schemas = {r[0]: Schema(*r) for r in sorted(_fetch(cur, Q.SCHEMAS, params))}

    parts: dict[int, dict[str, list[Any]]] = {}
    hashable: dict[int, list[tuple[str, bool]]] = {}
    for oid, *attribute, native in _fetch(cur, Q.COLUMNS, params):
        parts.setdefault(oid, {}).setdefault("columns", []).append(Column(*attribute))
        hashable.setdefault(oid, []).append((attribute[0], native))
    for name, query in (
        ("constraints", Q.CONSTRAINTS),
        ("indexes", Q.INDEXES),
        ("triggers", Q.TRIGGERS),
        ("policies", Q.POLICIES),
        ("rules", Q.RULES),
    ):
        for oid, *rest in _fetch(cur, query, params):
            parts.setdefault(oid, {}).setdefault(name, []).append(_PARTS[name](*rest))

    relations: list[Relation] = []
    for oid, *head in _fetch(cur, Q.RELATIONS, params):
        schema, name, kind, persistence, populated = head[0], head[1], head[2], head[5], head[-1]
        rows = digest = None
        # Unlogged tables have no data on a standby: reading one there is an error.
        if data and populated and kind in "rm" and not (in_recovery and persistence == "u"):
            rows, digest = checksum.run(cur, schema=schema, table=name, columns=hashable.get(oid))
        mine = parts.get(oid, {})
        *nested, rules = (tuple(sorted(mine.get(p, []), key=_order)) for p in _PARTS)
        # rules came last, after the data, with a default: fingerprints saved before load
        relations.append(Relation(*(*head, *nested, rows, digest, rules)))

    seq_rows = _fetch(cur, Q.SEQUENCES, params)
    # A table made unlogged takes its sequences along, and a standby cannot read those
    # either; they read as their start there (a standby's values are never compared).
    readable = [(r[0], r[1]) for r in seq_rows if not (in_recovery and r[-1] == "u")]
    values = checksum.sequence_values(cur, readable)
    sequences = [Sequence(*r[:-1], *values.get((r[0], r[1]), (r[3], False))) for r in seq_rows]
    functions = [Function(*r) for r in _fetch(cur, Q.FUNCTIONS, params)]
    types = [TypeDef(*r) for r in _fetch(cur, Q.TYPES, params)]
    default_privileges = [DefaultPrivilege(*r) for r in _fetch(cur, Q.DEFAULT_ACLS, params)]
    extensions = {r[0]: Extension(*r) for r in sorted(_fetch(cur, Q.EXTENSIONS, params))}
    setting_rows = _fetch(cur, Q.SETTINGS, params)
    settings = _settings_by_scope(setting_rows)
    referenced = {database.owner} | ({role for _, role, _ in setting_rows} - {None})

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
    roles = {r[0]: Role(*r) for r in sorted(_fetch(cur, Q.ROLES, {"roles": sorted(referenced)}))}

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
        publications={r[0]: Publication(*r) for r in _fetch(cur, Q.PUBLICATIONS, params)},
    )


def _by_name(objects: Iterable[_Q]) -> dict[str, _Q]:
    """Keyed by qualified name in code point order, whatever the database's collation."""
    return {o.qualified: o for o in sorted(objects, key=lambda o: o.qualified)}


def _order(part: Any) -> tuple[int, str]:
    return (part.position, "") if isinstance(part, Column) else (0, part.name)
