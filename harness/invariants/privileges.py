"""Privileges proven by trying each operation as each role, never by reading ACLs.

Reading ``relacl`` says what was granted; it does not say whether the role can
do the thing: an INSERT also needs USAGE on the schema and on the sequence
behind a serial default, and a schema grant gives nothing on the tables inside
it. So every operation is really run, as the role (``SET LOCAL ROLE``), inside a
transaction that is rolled back; a refusal is SQLSTATE 42501 and nothing else.
Sequences advanced by a probe INSERT are put back afterwards, because
``nextval`` is not transactional.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import PrivilegeRule

__all__ = ["probe_privileges"]

_probe_ids = itertools.count(1)


@dataclass(frozen=True)
class Attempt:
    role: str
    op: str
    target: str
    allowed: bool
    error: str


@dataclass(frozen=True)
class Target:
    schema: str
    name: str
    kind: str  # pg_class.relkind
    column: str | None  # a column an UPDATE may set

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _relations(conn: Conn, schema: str, name: str | None) -> list[Target]:
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, c.relkind::text,
               (SELECT a.attname FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND (%s::text IS NULL OR c.relname = %s)
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY c.relname
        """,
        (schema, name, name),
    ).fetchall()
    return [
        Target(str(r[0]), str(r[1]), str(r[2]), None if r[3] is None else str(r[3])) for r in rows
    ]


def _probe_sql(op: str, target: Target) -> sql.Composed:
    table = sql.Identifier(target.schema, target.name)
    if op == "SELECT":
        return sql.SQL("SELECT * FROM {} LIMIT 1").format(table)
    if op == "INSERT":
        # A real insert, so that defaults run: nextval() needs USAGE on the sequence.
        return sql.SQL("INSERT INTO {} DEFAULT VALUES").format(table)
    if op == "UPDATE":
        column = sql.Identifier(target.column or "")
        return sql.SQL("UPDATE {} SET {} = DEFAULT WHERE false").format(table, column)
    if op == "DELETE":
        return sql.SQL("DELETE FROM {} WHERE false").format(table)
    raise ValueError(op)


def _try(conn: Conn, role: str, statement: sql.Composed) -> tuple[bool, str]:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute(statement, prepare=False)
    except psycopg.errors.InsufficientPrivilege as exc:
        return False, exc.diag.message_primary or str(exc)
    except psycopg.Error as exc:
        # Refused for another reason (a NOT NULL column, a check): past the privilege check.
        return True, exc.diag.message_primary or str(exc)
    return True, ""


def _schema_attempts(conn: Conn, rule: PrivilegeRule) -> Iterator[Attempt]:
    for op in sorted(rule.allow | rule.deny):
        statement: sql.Composed
        if op == "USAGE":
            # Looking a name up in a schema needs USAGE; a missing name then says 42P01.
            name = sql.Identifier(rule.on, "pgcutover_no_such_relation").as_string()
            statement = sql.SQL("SELECT {}::regclass").format(sql.Literal(name))
        else:
            probe = sql.Identifier(rule.on, f"pgcutover_probe_{next(_probe_ids)}")
            statement = sql.SQL("CREATE TABLE {} ()").format(probe)
        allowed, error = _try(conn, rule.role, statement)
        yield Attempt(rule.role, op, rule.on, allowed, error)


def _sequence_state(conn: Conn) -> list[tuple[str, int, bool]]:
    names = conn.execute(
        "SELECT schemaname, sequencename FROM pg_sequences"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    state = []
    for schema, name in names:
        seq = sql.Identifier(str(schema), str(name))
        row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(seq)).fetchone()
        assert row is not None
        state.append((seq.as_string(), int(str(row[0])), bool(row[1])))
    return state


def probe_privileges(conn: Conn, rules: Sequence[PrivilegeRule]) -> Check:
    """Try every (role, operation, object) of ``rules``; one check naming each surprise."""
    offenders: list[str] = []
    tried = 0
    roles = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    schemas = {str(r[0]) for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    sequences = _sequence_state(conn)
    try:
        for rule in rules:
            if rule.role not in roles:
                offenders.append(
                    f"role {rule.role} does not exist, so nothing can be tried as it "
                    "(the plan must CREATE ROLE it before granting to it)"
                )
                continue
            schema = rule.on.split(".", 1)[0]
            if schema not in schemas:
                offenders.append(f"{rule.role} on {rule.on}: schema {schema} does not exist")
                continue
            if rule.is_schema:
                attempts = list(_schema_attempts(conn, rule))
            else:
                name = rule.on.split(".", 1)[1]
                targets = _relations(conn, schema, None if name == "*" else name)
                if not targets:
                    offenders.append(f"{rule.role} on {rule.on}: no table or view there to try")
                    continue
                attempts = []
                for target in targets:
                    for op in sorted(rule.allow | rule.deny):
                        if target.kind == "m" and op != "SELECT":
                            continue  # a materialized view is read-only for everyone
                        allowed, error = _try(conn, rule.role, _probe_sql(op, target))
                        attempts.append(Attempt(rule.role, op, target.qualified, allowed, error))
            for a in attempts:
                tried += 1
                if a.op in rule.allow and not a.allowed:
                    offenders.append(f"{a.role} cannot {a.op} on {a.target}: {a.error}")
                elif a.op in rule.deny and a.allowed:
                    offenders.append(
                        f"{a.role} can {a.op} on {a.target}, which the plan says it must not"
                    )
    finally:
        for name, last_value, is_called in sequences:
            conn.execute("SELECT setval(%s::regclass, %s, %s)", (name, last_value, is_called))
    return Check.of(
        "privileges.tried",
        offenders=list(dict.fromkeys(offenders)),
        ok=f"all {tried} operations tried as their roles were allowed or refused as planned",
        failed=f"{len(offenders)} of the planned privileges do not hold when tried "
        f"({tried} operations tried)",
    )
