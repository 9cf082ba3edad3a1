"""Grants beyond the plan: every ACL in the schemas a plan touches, against what it allows.

Trying privileges proves what the matrix lists; it cannot see what the matrix
leaves out. A ``GRANT … TO PUBLIC``, a grant to a role the plan never names, a
TRUNCATE nobody asked for or a grant option slipped in all pass every probe. So
the effective ACL of every schema, table, view, sequence, function and type in
the plan's schemas (and ``public``), and the default privileges there, are read
from the catalog and each grant is held against the plan:

- what the object had before the migration (under its old name) stays allowed;
- PostgreSQL's own defaults (EXECUTE on functions and USAGE on types for PUBLIC)
  and the owner's rights are no grants;
- a plan role may hold, on an object its ``[[privileges]]`` rules cover, what
  those rules allow (what they deny is left to the probes, which try it); on
  any other object, what its rules allow it anywhere (a role allowed only SELECT
  gains nothing else; sequences follow the writes that need them), except in a
  schema the plan denies it USAGE on: there it is to hold nothing, since the
  grant waits only for someone to grant USAGE;
- PUBLIC, any other role, and grant options are findings; so is the default EXECUTE
  for PUBLIC on a new SECURITY DEFINER function, which runs with its owner's rights.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.catalog import Fingerprint
from harness.catalog.fingerprint import acl_grants
from harness.invariants.result import Check
from harness.plan import Layout, PrivilegeRule
from harness.plan.model import TABLE_OPS

__all__ = ["check_grants"]

# Granted by PostgreSQL itself to PUBLIC on a new object of the kind (acldefault).
_DEFAULT_PUBLIC = {"function": {"EXECUTE"}, "type": {"USAGE"}}
_WRITES = frozenset({"INSERT", "UPDATE"})


@dataclass(frozen=True)
class Grant:
    grantee: str
    privilege: str
    grant_option: bool


def _grants(acl: Iterable[str]) -> set[Grant]:
    return {Grant(*grant) for grant in acl_grants(acl)}


@dataclass(frozen=True)
class _Object:
    kind: str  # schema, relation, column, sequence, function, type
    key: str  # as reports name it
    schema: str
    name: str
    owner: str
    acl: tuple[str, ...]
    before: tuple[str, ...] | None  # the ACL of the same object before the migration
    definer: bool = False  # a SECURITY DEFINER function: it runs with its owner's rights


class _Allowance:
    """What the plan lets each of its roles hold."""

    def __init__(self, layout: Layout, rules: Sequence[PrivilegeRule]) -> None:
        self.roles = set(layout.roles) | {r.role for r in rules}
        self.rules = rules

    def covering(self, role: str, obj: _Object) -> list[PrivilegeRule]:
        if obj.kind == "schema":
            return [r for r in self.rules if r.role == role and r.is_schema and r.on == obj.name]
        return [
            r
            for r in self.rules
            if r.role == role
            and not r.is_schema
            and r.schema == obj.schema
            and r.relation in (None, obj.name)
        ]

    def reads_in(self, role: str, schema: str) -> bool:
        return any(
            r.role == role and not r.is_schema and r.schema == schema and r.allow
            for r in self.rules
        )

    def anywhere(self, role: str, *, schemas: bool) -> set[str]:
        return {
            op for r in self.rules if r.role == role and r.is_schema == schemas for op in r.allow
        }

    def shut_out(self, role: str, schema: str) -> bool:
        """The plan denies ``role`` USAGE on ``schema``: it is to reach nothing inside."""
        return any(
            r.role == role and r.is_schema and r.on == schema and "USAGE" in r.deny
            for r in self.rules
        )

    def allows(self, grant: Grant, obj: _Object) -> bool:
        role, privilege = grant.grantee, grant.privilege
        if obj.kind in ("function", "type"):
            return True
        if obj.kind != "schema" and self.shut_out(role, obj.schema):
            # Dormant while USAGE is denied, live the day someone grants it.
            return False
        if obj.kind == "sequence":
            table_ops = self.anywhere(role, schemas=False)
            needed = _WRITES if privilege in ("USAGE", "UPDATE") else TABLE_OPS
            return bool(table_ops & needed)
        covering = self.covering(role, obj)
        if obj.kind == "schema" and privilege == "USAGE" and self.reads_in(role, obj.name):
            return True  # a role allowed anything on a schema's tables needs to look in it
        if covering:
            allowed = {op for r in covering for op in r.allow}
            denied = {op for r in covering for op in r.deny}
            return privilege in allowed or privilege in denied  # denied: the probes try it
        return privilege in self.anywhere(role, schemas=obj.kind == "schema")


def _earlier(before: Mapping[str, Any], key: str, name: str, moved_from: Mapping[str, str]) -> Any:
    """The same object before the migration, under its old name; None for a new one."""
    source = moved_from.get(key, key)
    if source in before:
        return before[source]
    same = [o for o in before.values() if o.name == name]
    return same[0] if len(same) == 1 else None


def _before_acl(
    before: Mapping[str, Any], key: str, name: str, moved_from: Mapping[str, str]
) -> tuple[str, ...] | None:
    earlier = _earlier(before, key, name, moved_from)
    return None if earlier is None else tuple(earlier.acl)


def _objects(
    layout: Layout, before: Fingerprint, after: Fingerprint, schemas: set[str]
) -> Iterator[_Object]:
    moved_from = {layout.target(source): source for source in layout.tables}
    for name, schema in after.schemas.items():
        if name in schemas:
            old_schema = before.schemas.get(name)
            yield _Object("schema", f"schema {name}", name, name, schema.owner, schema.acl,
                          None if old_schema is None else old_schema.acl)  # fmt: skip
    old_relations = {**before.tables, **before.views}
    for key, rel in {**after.tables, **after.views}.items():
        if rel.schema not in schemas:
            continue
        acl = _before_acl(old_relations, key, rel.name, moved_from)
        yield _Object("relation", f"`{key}`", rel.schema, rel.name, rel.owner, rel.acl, acl)
        source = old_relations.get(moved_from.get(key, key))
        for column in rel.columns:
            old_column = source.column(column.name) if source is not None else None
            yield _Object("column", f"`{key}.{column.name}`", rel.schema, rel.name, rel.owner,
                          column.acl, None if old_column is None else old_column.acl)  # fmt: skip
    kinds: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [
        ("sequence", before.sequences, after.sequences),
        ("function", before.functions, after.functions),
        ("type", before.types, after.types),
    ]
    for kind, old_objects, new_objects in kinds:
        for key, obj in new_objects.items():
            if obj.schema in schemas:
                earlier = _earlier(old_objects, key, obj.name, {})
                acl = None if earlier is None else tuple(earlier.acl)
                definer = kind == "function" and "SECURITY DEFINER" in obj.definition
                if definer and earlier is not None and "SECURITY DEFINER" not in earlier.definition:
                    # Made to run as its owner: whoever could EXECUTE it now acts with the
                    # owner's rights, so no grant it had before excuses itself.
                    acl = None
                yield _Object(kind, f"`{key}`", obj.schema, obj.name, obj.owner, obj.acl, acl,
                              definer)  # fmt: skip


def _extra(grant: Grant, obj: _Object, after: Fingerprint, allowance: _Allowance) -> str | None:
    """Why ``grant`` on ``obj`` is beyond the plan; None when it is not."""
    if grant.grantee == obj.owner:
        return None
    role = after.roles.get(grant.grantee)
    if role is not None and role.superuser:
        return None
    if obj.before is not None and grant in _grants(obj.before):
        return None
    if grant.grantee == "PUBLIC":
        # The default EXECUTE is no grant, except on a function that runs as its owner:
        # every role could then do what the owner may, through it.
        default = _DEFAULT_PUBLIC.get(obj.kind, set())
        if grant.privilege in default and not grant.grant_option and not obj.definer:
            return None
        return "PUBLIC, that is every role,"
    if grant.grantee not in allowance.roles:
        return f"{grant.grantee}, a role the plan does not name,"
    if grant.grant_option:
        return f"{grant.grantee} (WITH GRANT OPTION)"
    if not allowance.allows(grant, obj):
        return grant.grantee
    return None


def _default_privileges(
    before: Fingerprint, after: Fingerprint, schemas: set[str], allowance: _Allowance
) -> Iterator[str]:
    kinds = {"r": "relation", "S": "sequence", "f": "function", "T": "type", "n": "schema"}
    nouns = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}
    for key, entry in after.default_privileges.items():
        if entry.schema is not None and entry.schema not in schemas:
            continue
        was = before.default_privileges.get(key)
        obj = _Object(kinds.get(entry.object_type, "relation"), "", entry.schema or "", "*",
                      entry.role, entry.acl, None if was is None else was.acl)  # fmt: skip
        for grant in sorted(_grants(entry.acl), key=lambda g: (g.grantee, g.privilege)):
            who = _extra(grant, obj, after, allowance)
            if who is not None:
                where = f" in schema {entry.schema}" if entry.schema else ""
                yield (
                    f"default privileges: {who} gets {grant.privilege} on every new "
                    f"{nouns.get(entry.object_type, 'object')} {entry.role} creates{where}, "
                    "which no rule of the plan allows"
                )


# What a role attribute or a predefined role's membership gives, beyond any grant.
_POWERS = {
    "superuser": "SUPERUSER, which passes every privilege check",
    "create_role": "CREATEROLE, with which it can grant itself any role but a superuser",
    "create_db": "CREATEDB",
    "replication": "REPLICATION, with which it can stream every table's changes",
    "bypass_rls": "BYPASSRLS, which lets it past every row-level security policy",
}
_PREDEFINED = {
    "pg_read_all_data": "SELECT on every table",
    "pg_write_all_data": "INSERT, UPDATE and DELETE on every table",
    "pg_execute_server_program": "running programs on the server as its OS user",
    "pg_read_server_files": "reading any file the server can",
    "pg_write_server_files": "writing any file the server can",
    "pg_signal_backend": "cancelling and ending other sessions",
}


def _powers(roles: Iterable[str], before: Fingerprint, after: Fingerprint) -> Iterator[str]:
    """Powers the migration gave the plan's roles: no ``[[privileges]]`` rule gives these,
    and no probe of a table's privileges shows them."""
    for name in sorted(roles):
        now, was = after.roles.get(name), before.roles.get(name)
        if now is None:
            continue
        for attribute, power in _POWERS.items():
            if getattr(now, attribute) and not (was is not None and getattr(was, attribute)):
                yield f"role {name} was given {power} — take it back (ALTER ROLE {name} NO…)"
        for group in sorted(set(now.member_of) - set(was.member_of if was else ())):
            if group in _PREDEFINED:
                yield (
                    f"role {name} was made a member of {group}: {_PREDEFINED[group]}, beyond "
                    f"any rule of the plan — REVOKE {group} FROM {name}"
                )


def check_grants(
    layout: Layout, rules: Sequence[PrivilegeRule], before: Fingerprint, after: Fingerprint
) -> Check:
    """Every grant in the plan's schemas is one the plan allows or one that was there."""
    schemas = {"public", *layout.schemas, *layout.tables.values(), *(r.schema for r in rules)}
    allowance = _Allowance(layout, rules)
    offenders: list[str] = []
    seen = 0
    for obj in _objects(layout, before, after, schemas):
        seen += 1
        for grant in sorted(_grants(obj.acl), key=lambda g: (g.grantee, g.privilege)):
            who = _extra(grant, obj, after, allowance)
            if who is None:
                continue
            if obj.definer and grant.grantee == "PUBLIC":
                offenders.append(
                    f"{obj.key}: PUBLIC, that is every role, may EXECUTE this SECURITY DEFINER "
                    "function, which runs with its owner's rights (PostgreSQL's default for a "
                    "function) — REVOKE EXECUTE ON FUNCTION … FROM PUBLIC"
                )
                continue
            offenders.append(
                f"{obj.key}: {who} was granted {grant.privilege}, which no rule of the plan "
                "allows — revoke it, or add a [[privileges]] rule that allows it"
            )
    offenders.extend(_default_privileges(before, after, schemas, allowance))
    offenders.extend(_powers(allowance.roles, before, after))
    return Check.of(
        "privileges.granted",
        offenders=offenders,
        ok=f"every grant on the {seen} objects in {', '.join(sorted(schemas))} is one the plan "
        "allows or one that was there before",
        failed="grants beyond what the plan allows (to PUBLIC, to other roles, or privileges "
        "its rules never give)",
    )
