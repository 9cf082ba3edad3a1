"""Comparing two fingerprints, in sentences a DBA accepts at once.

Each :class:`Difference` names the object by qualified name and says what was
expected and what was found. A table missing from its schema but present under
the same name in another is reported once as moved ("expected in public, found
in sales"), and its rows and columns are still compared, so "nothing
lost" holds across a move; what hangs off its old name (constraints, indexes)
is not, since their definitions print the new schema.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from harness.catalog.fingerprint import (
    ACL_PRIVILEGES,
    DefaultPrivilege,
    Fingerprint,
    Relation,
    Sequence,
    acl_grants,
)
from harness.errors import UsageError

__all__ = [
    "IGNORE_DATA",
    "IGNORE_DATABASE",
    "IGNORE_KEYS",
    "IGNORE_OWNERS",
    "IGNORE_PRIVILEGES",
    "IGNORE_ROLES",
    "IGNORE_SEQUENCE_VALUES",
    "Difference",
    "diff",
    "same",
]

IGNORE_DATA = "data"
"""Row counts and checksums of tables and materialized views."""
IGNORE_SEQUENCE_VALUES = "sequence_values"
"""Sequences' last_value and is_called: a hot standby reads them up to 32 ahead."""
IGNORE_PRIVILEGES = "privileges"
"""ACLs of every object, column grants and default privileges (``--no-acl`` copies)."""
IGNORE_OWNERS = "owners"
"""Owners of every object (``--no-owner`` copies)."""
IGNORE_DATABASE = "database"
"""The database's owner, ACL, encoding, locale, and its ``ALTER DATABASE``/``ALTER ROLE
... IN DATABASE`` settings: what ``pg_dump`` without ``--create`` does not carry."""
IGNORE_ROLES = "roles"
"""Role attributes and memberships, and ``ALTER ROLE ... SET`` for all databases."""
IGNORE_KEYS = frozenset(
    {
        IGNORE_DATA,
        IGNORE_SEQUENCE_VALUES,
        IGNORE_PRIVILEGES,
        IGNORE_OWNERS,
        IGNORE_DATABASE,
        IGNORE_ROLES,
    }
)


@dataclass(frozen=True)
class Difference:
    """One thing that differs; ``message`` is the whole sentence that ``str()`` prints."""

    kind: str  # table, column, rows, checksum, privileges, setting, sequence_value, ...
    object: str  # qualified name: public.orders, public.orders.email, database.search_path
    message: str

    def __str__(self) -> str:
        return self.message


def diff(
    expected: Fingerprint, actual: Fingerprint, *, ignore: Collection[str] = ()
) -> list[Difference]:
    """Everything that differs, in a stable order: database, schemas, tables, ... roles."""
    unknown = sorted(set(ignore) - IGNORE_KEYS)
    if unknown:
        raise UsageError(
            f"unknown ignore key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(sorted(IGNORE_KEYS))}"
        )
    return _Differ(frozenset(ignore)).run(expected, actual)


def same(expected: Fingerprint, actual: Fingerprint, *, ignore: Collection[str] = ()) -> bool:
    return not diff(expected, actual, ignore=ignore)


_ORDER = {name: i for i, name in enumerate(ACL_PRIVILEGES.values())}
# pg_trigger.tgenabled and pg_rewrite.ev_enabled alike
_FIRES = {"O": "enabled", "D": "disabled", "R": "enabled on replicas only", "A": "always enabled"}
_WORDS: dict[tuple[str, str], dict[Any, str]] = {
    ("Relation", "kind"): {
        "r": "table",
        "p": "partitioned table",
        "f": "foreign table",
        "v": "view",
        "m": "materialized view",
    },
    ("Relation", "persistence"): {"p": "permanent", "u": "unlogged", "t": "temporary"},
    ("Function", "kind"): {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"},
    ("TypeDef", "kind"): {"e": "enum", "d": "domain", "c": "composite", "r": "range", "b": "base"},
    ("Rule", "enabled"): _FIRES,
    ("Trigger", "enabled"): _FIRES,
    ("Constraint", "type"): {
        "p": "primary key",
        "f": "foreign key",
        "u": "unique",
        "c": "check",
        "x": "exclusion",
        "t": "trigger",
    },
    ("Index", "valid"): {
        True: "valid",
        False: "INVALID (left by a failed CREATE INDEX CONCURRENTLY)",
    },
    ("Constraint", "validated"): {True: "validated", False: "NOT VALID"},
    ("Relation", "populated"): {True: "populated", False: "not populated (WITH NO DATA)"},
    ("Policy", "command"): {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"},
    ("DefaultPrivilege", "object_type"): {
        "r": "tables",
        "S": "sequences",
        "f": "functions",
        "T": "types",
        "n": "schemas",
    },
}
_LABELS = {
    "enabled": "state",
    "valid": "state",
    "validated": "state",
    "populated": "state",
    "row_security": "row-level security",
    "force_row_security": "forced row-level security",
    "partition_bound": "partition bound",
    "partition_key": "partition key",
    "not_null": "not null",
    "with_check": "WITH CHECK",
    "using": "USING",
    "member_of": "member of",
    "create_role": "create role",
    "create_db": "create database",
    "bypass_rls": "bypass RLS",
    "connection_limit": "connection limit",
    "valid_until": "password valid until",
    "allow_connections": "allowing connections",
    "config": "settings",
}
_MULTILINE = {"definition"}  # for views and functions; constraints and indexes fit one line


# nextval WAL-logs this many values ahead (SEQ_LOG_VALS in sequence.c, every version
# since 7.x): a standby, or a primary after a crash, reads up to this much more.
_SEQ_LOG_VALS = 32


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "none"
    return str(value)


def _grants(acl: tuple[str, ...]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for grantee, name, option in acl_grants(acl):
        grants.setdefault(grantee, set()).add(f"{name} WITH GRANT OPTION" if option else name)
    return grants


def _privilege_changes(expected: tuple[str, ...], actual: tuple[str, ...]) -> str:
    """Which role gained or lost which privilege, e.g. ``app_rw gained SELECT, INSERT``."""
    before, after = _grants(expected), _grants(actual)
    parts = []
    for role in sorted(before.keys() | after.keys()):
        old, new = before.get(role, set()), after.get(role, set())
        for verb, names in (("gained", new - old), ("lost", old - new)):
            if names:
                ordered = sorted(names, key=lambda n: (_ORDER.get(n.split(" WITH")[0], 99), n))
                parts.append(f"{role} {verb} {', '.join(ordered)}")
    if not parts:  # same privileges, granted by someone else
        return f"grantors differ: expected {_show(expected)}, found {_show(actual)}"
    return "; ".join(parts)


class _Placed(Protocol):
    @property
    def schema(self) -> str: ...
    @property
    def qualified(self) -> str: ...


_P = TypeVar("_P", bound=_Placed)


class _Differ:
    def __init__(self, ignore: frozenset[str]) -> None:
        self.ignore = ignore
        self.out: list[Difference] = []

    def add(self, kind: str, obj: str, message: str) -> None:
        self.out.append(Difference(kind, obj, message))

    def run(self, e: Fingerprint, a: Fingerprint) -> list[Difference]:
        if IGNORE_DATABASE not in self.ignore:
            self.attributes("database", e.database, a.database, obj="database", subject="database")
        self.by_key("schema", e.schemas, a.schemas)
        for kind, tables, found in (("table", e.tables, a.tables), ("view", e.views, a.views)):
            for key, old, new, moved in self.placed(kind, tables, found):
                self.relation(key, old, new, moved=moved)
        for key, seq, now, moved in self.placed("sequence", e.sequences, a.sequences):
            self.sequence(key, seq, now, moved=moved)
        for key, fn, fn_now, moved in self.placed("function", e.functions, a.functions):
            if not moved:
                self.attributes("function", fn, fn_now, obj=key)
        for key, ty, ty_now, moved in self.placed("type", e.types, a.types):
            if not moved:
                self.attributes("type", ty, ty_now, obj=key)
        if IGNORE_PRIVILEGES not in self.ignore:
            self.default_privileges(e.default_privileges, a.default_privileges)
        self.by_key("extension", e.extensions, a.extensions)
        self.by_key("publication", e.publications, a.publications)
        self.settings(e.settings, a.settings)
        if IGNORE_ROLES not in self.ignore:
            for name in sorted(e.roles.keys() | a.roles.keys()):
                if name not in a.roles:
                    self.add("role", name, f"role `{name}` missing (dropped)")
                elif name not in e.roles:
                    self.add("role", name, f"unexpected role `{name}` (created, never dropped)")
                else:
                    subject = f"role `{name}`"
                    self.attributes("role", e.roles[name], a.roles[name], obj=name, subject=subject)
        return self.out

    def placed(
        self, kind: str, expected: Mapping[str, _P], actual: Mapping[str, _P]
    ) -> list[tuple[str, _P, _P, bool]]:
        """Pairs to compare, moved ones flagged; reports what is missing, moved or unexpected."""
        pairs: list[tuple[str, _P, _P, bool]] = []
        claimed: set[str] = set()
        for key, old in expected.items():
            if key in actual:
                pairs.append((key, old, actual[key], False))
                continue
            bare = _bare(old)
            elsewhere = [k for k, v in actual.items() if k not in expected and _bare(v) == bare]
            if not elsewhere:
                self.add(kind, key, f"{kind} `{key}` missing")
                continue
            claimed.update(elsewhere)
            schemas = ", ".join(actual[k].schema for k in elsewhere)
            self.add(kind, key, f"`{key}`: expected in {old.schema}, found in {schemas}")
            if len(elsewhere) == 1:
                pairs.append((key, old, actual[elsewhere[0]], True))
        for key in sorted(actual.keys() - expected.keys() - claimed):
            self.add(kind, key, f"unexpected {kind} `{key}`")
        return pairs

    def by_key(self, kind: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> None:
        for key in sorted(expected.keys() | actual.keys()):
            if key not in actual:
                self.add(kind, key, f"{kind} `{key}` missing")
            elif key not in expected:
                self.add(kind, key, f"unexpected {kind} `{key}`")
            else:
                subject = f"{kind} `{key}`"
                self.attributes(kind, expected[key], actual[key], obj=key, subject=subject)

    def attributes(
        self,
        kind: str,
        old: Any,
        new: Any,
        *,
        obj: str,
        subject: str = "",
        skip: Collection[str] = (),
    ) -> None:
        """Field by field; privileges, owners and multi-line definitions get their own sentences."""
        subject = subject or f"`{obj}`"
        for f in fields(old):
            before, after = getattr(old, f.name), getattr(new, f.name)
            if before == after or f.name in skip:
                continue
            if f.name == "acl":
                if IGNORE_PRIVILEGES not in self.ignore:
                    changes = _privilege_changes(before, after)
                    self.add("privileges", obj, f"{subject}: privileges differ: {changes}")
            elif f.name == "owner" and IGNORE_OWNERS in self.ignore:
                continue
            elif f.name in _MULTILINE and "\n" in f"{before}{after}":
                lines = difflib.unified_diff(
                    str(before).splitlines(), str(after).splitlines(), lineterm="", n=0
                )
                changed = [
                    f"    {x}" for x in lines if x[:1] in "+-" and x[:3] not in ("+++", "---")
                ]
                self.add(kind, obj, f"{subject}: definition differs:\n" + "\n".join(changed))
            else:
                words = _WORDS.get((type(old).__name__, f.name), {})
                enum = kind == "type" and f.name == "definition" and old.kind == "e"
                label = "labels" if enum else _LABELS.get(f.name, f.name.replace("_", " "))
                shown = words.get(before, _show(before)), words.get(after, _show(after))
                self.add(kind, obj, f"{subject}: {label} {shown[0]} expected, {shown[1]} found")

    def relation(self, key: str, old: Relation, new: Relation, *, moved: bool) -> None:
        if not moved:
            kind = "table" if old.kind in "rpf" else "view"
            self.attributes(kind, old, new, obj=key, skip=_RELATION_PARTS)
            for part, noun in (
                ("constraints", "constraint"),
                ("indexes", "index"),
                ("triggers", "trigger"),
                ("policies", "policy"),
                ("rules", "rule"),
            ):
                self.parts(noun, key, getattr(old, part), getattr(new, part))
        self.columns(key, old, new, moved=moved)
        if IGNORE_DATA in self.ignore or old.rows is None or new.rows is None:
            return
        if old.rows != new.rows:
            self.add("rows", key, f"`{key}`: {_rows(old.rows)} expected, {new.rows:,} found")
        elif old.checksum != new.checksum:
            message = f"`{key}`: same {_rows(old.rows)} counted but contents differ (checksum)"
            self.add("checksum", key, message)

    def columns(self, key: str, old: Relation, new: Relation, *, moved: bool) -> None:
        before = {c.name: c for c in old.columns}
        after = {c.name: c for c in new.columns}
        for name in [n for n in before if n not in after]:
            self.add("column", f"{key}.{name}", f"column `{key}.{name}` missing")
        for name in [n for n in after if n not in before]:
            self.add("column", f"{key}.{name}", f"unexpected column `{key}.{name}`")
        # A position shifts whenever an earlier column goes: compare the order instead.
        # A moved table's defaults name its sequence's new schema (the sequence moves too).
        skip = ("position", "default") if moved else ("position",)
        for name in [n for n in before if n in after]:
            obj = f"{key}.{name}"
            subject = f"column `{obj}`"
            self.attributes(
                "column", before[name], after[name], obj=obj, subject=subject, skip=skip
            )
        order = [n for n in before if n in after], [n for n in after if n in before]
        if order[0] != order[1]:
            message = (
                f"`{key}`: column order {', '.join(order[0])} expected, {', '.join(order[1])} found"
            )
            self.add("column order", key, message)

    def parts(self, noun: str, key: str, old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
        before = {p.name: p for p in old}
        after = {p.name: p for p in new}
        for name in sorted(before.keys() | after.keys()):
            obj = f"{key}.{name}"
            if name not in after:
                self.add(noun, obj, f"{noun} `{name}` on `{key}` missing")
            elif name not in before:
                self.add(noun, obj, f"unexpected {noun} `{name}` on `{key}`")
            else:
                subject = f"{noun} `{name}` on `{key}`"
                self.attributes(noun, before[name], after[name], obj=obj, subject=subject)

    def sequence(self, key: str, old: Sequence, new: Sequence, *, moved: bool) -> None:
        values = ("last_value", "is_called")
        if not moved:
            self.attributes("sequence", old, new, obj=key, skip=("schema", *values))
        if IGNORE_SEQUENCE_VALUES in self.ignore:
            return
        if old.last_value != new.last_value:
            ahead = new.last_value - old.last_value
            if ahead < 0:
                reset = new.last_value == new.start
                note = " (reset)" if reset else " (went backwards: nextval will repeat values)"
            elif ahead <= _SEQ_LOG_VALS:
                note = f" (ahead by {ahead}, as a hot standby reads it)"
            else:
                note = ""
            message = f"`{key}`: last value {old.last_value:,} expected, {new.last_value:,} found"
            self.add("sequence_value", key, message + note)
        elif old.is_called != new.is_called:
            used = {True: "already handed out", False: "not yet handed out"}
            message = (
                f"`{key}`: last value {old.last_value:,} expected {used[old.is_called]}, "
                f"found {used[new.is_called]}"
            )
            self.add("sequence_value", key, message)

    def default_privileges(
        self, expected: Mapping[str, DefaultPrivilege], actual: Mapping[str, DefaultPrivilege]
    ) -> None:
        """An entry absent on one side compares as granting nothing."""
        for key in sorted(expected.keys() | actual.keys()):
            entry = expected.get(key) or actual[key]
            before, after = expected.get(key), actual.get(key)
            old, new = before.acl if before else (), after.acl if after else ()
            if old != new:
                objects = _WORDS["DefaultPrivilege", "object_type"].get(
                    entry.object_type, "objects"
                )
                where = f" in {entry.schema}" if entry.schema else ""
                message = f"default privileges on {objects} created by {entry.role}{where}"
                changes = _privilege_changes(old, new)
                self.add("default privileges", key, f"{message}: {changes}")

    def settings(
        self, expected: Mapping[str, Mapping[str, str]], actual: Mapping[str, Mapping[str, str]]
    ) -> None:
        for scope in sorted(expected.keys() | actual.keys()):
            in_database = scope == "database" or scope.endswith(" in database")
            if (IGNORE_DATABASE if in_database else IGNORE_ROLES) in self.ignore:
                continue
            old, new = expected.get(scope, {}), actual.get(scope, {})
            for name in sorted(old.keys() | new.keys()):
                if old.get(name) != new.get(name):
                    shown = [
                        f"'{v}'" if v is not None else "<unset>"
                        for v in (old.get(name), new.get(name))
                    ]
                    message = f"{scope} setting {name}: expected {shown[0]}, found {shown[1]}"
                    self.add("setting", f"{scope}.{name}", message)


_RELATION_PARTS = (
    "schema",
    "columns",
    "constraints",
    "indexes",
    "triggers",
    "policies",
    "rules",
    "rows",
    "checksum",
)


def _bare(obj: _Placed) -> str:
    """The name without its schema; for a function, with its arguments."""
    return obj.qualified[len(obj.schema) + 1 :]
