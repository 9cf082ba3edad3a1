"""Privileges proven by trying each operation as each role, never by reading ACLs.

Reading ``relacl`` says what was granted; it does not say whether the role can
do the thing: an INSERT also needs USAGE on the schema and on the sequence
behind a serial default, a trigger may write where the role cannot, a schema
grant gives nothing on the tables inside it, and a role that cannot log in, or
whose own settings make every transaction read-only, can do nothing at all. So
every operation is really run, in a session that is the role (logged in as it
where it can log in: see harness.invariants.acting), inside a transaction that
is rolled back:

- INSERT inserts a row of defaults; UPDATE sets a real column of a real row to
  the value it has (every trigger fires, no constraint objects) and DELETE
  deletes a real row, both through a cursor (``WHERE CURRENT OF``) the harness
  opens for the role, so the probe asks for exactly what it names. A view
  cannot be written through a cursor (PostgreSQL 15: "WHERE CURRENT OF on a view
  is not implemented"), nor an empty table: there the statement matches no row,
  and still passes every privilege check the executor makes at its start.
- Each probe has three outcomes: allowed, refused (SQLSTATE 42501, or a write in
  a transaction the role's settings make read-only), or not applicable — the
  object cannot take the operation at all (a view PostgreSQL cannot write
  through, a materialized view, no column to set). Only the first two count: a
  read-only role "able to INSERT" into a view nobody can write to is no finding.
- ``nextval`` is not transactional, so a rolled-back probe would still advance
  sequences. Each probe transaction first restarts every sequence at its own next
  value, which its rollback undoes: every sequence is left exactly as it was, and
  no value another session took is ever handed out again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint
from harness.connections import Conn
from harness.invariants.acting import LoginFor, RoleSession, RoleSessions
from harness.invariants.result import Check
from harness.plan import PrivilegeRule

__all__ = ["Attempt", "Known", "probe_privileges"]

Outcome = Literal["allowed", "refused", "not applicable", "blocked"]
_probe_ids = itertools.count(1)
# pg_relation_is_updatable's bits: 1 << CMD_UPDATE, 1 << CMD_INSERT, 1 << CMD_DELETE.
_UPDATABLE_BIT = {"UPDATE": 4, "INSERT": 8, "DELETE": 16}
# Raised before any privilege is looked at: the object cannot take the write. (A SELECT
# of a materialized view not yet populated fails with 55000 too, but only after the
# privilege check: for SELECT that is "allowed".)
_NOT_APPLICABLE = frozenset({"55000", "42809", "0A000", "428C9"})
# The role may not write at all: its transactions are read-only (its own or the
# database's default_transaction_read_only), which no grant can mend.
_REFUSED = frozenset({"42501", "25006"})


@dataclass(frozen=True)
class Attempt:
    role: str
    op: str
    target: str
    outcome: Outcome
    error: str


@dataclass(frozen=True)
class Target:
    schema: str
    name: str
    kind: str  # pg_class.relkind
    updatable: int  # pg_relation_is_updatable(oid, true)
    column: str | None  # a column an UPDATE may set
    has_row: bool
    triggers: tuple[tuple[str, str], ...] = ()  # (trigger, its function's name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text, pg_relation_is_updatable(c.oid, true),
       (SELECT a.attname FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = '' AND a.attidentity <> 'a'
           AND (c.relkind NOT IN ('v', 'f') OR pg_column_is_updatable(c.oid, a.attnum, true))
         ORDER BY a.attnum LIMIT 1),
       array(SELECT array[t.tgname::text, p.proname::text] FROM pg_trigger t
               JOIN pg_proc p ON p.oid = t.tgfoid
              WHERE t.tgrelid = c.oid AND NOT t.tgisinternal ORDER BY t.tgname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND (%s::text IS NULL OR c.relname = %s)
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
 ORDER BY c.relname
"""


def _relations(conn: Conn, schema: str, name: str | None) -> list[Target]:
    targets = []
    for r in conn.execute(_RELATIONS, (schema, name, name)).fetchall():
        schema_, name_, kind = str(r[0]), str(r[1]), str(r[2])
        has_row = False
        if kind in ("r", "p"):
            query = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(schema_, name_))
            row = conn.execute(query).fetchone()
            has_row = bool(row and row[0])
        column = None if r[4] is None else str(r[4])
        triggers = tuple((str(t[0]), str(t[1])) for t in r[5]) if isinstance(r[5], list) else ()
        targets.append(Target(schema_, name_, kind, int(str(r[3])), column, has_row, triggers))
    return targets


def _not_applicable(op: str, target: Target) -> str | None:
    """Why ``op`` cannot be run on ``target`` by anyone; None when it can."""
    if op == "SELECT":
        return None
    if target.kind == "m":
        return "a materialized view cannot be written to"
    if not target.updatable & _UPDATABLE_BIT[op]:
        return f"PostgreSQL cannot {op} through this {'view' if target.kind == 'v' else 'relation'}"
    if op == "UPDATE" and target.column is None:
        return "it has no column an UPDATE can set"
    return None


def _probe(session: RoleSession, op: str, target: Target) -> sql.Composed:
    """The statement to run as the role; opens the cursor it needs first."""
    table = target.identifier
    if op == "SELECT":
        return sql.SQL("SELECT * FROM {} LIMIT 1").format(table)
    if op == "INSERT":
        # A real insert, so that defaults run: nextval() needs USAGE on the sequence.
        return sql.SQL("INSERT INTO {} DEFAULT VALUES").format(table)
    if not (target.kind in ("r", "p") and target.has_row):
        if op == "UPDATE":
            column = sql.Identifier(target.column or "")
            return sql.SQL("UPDATE {} SET {} = DEFAULT WHERE false").format(table, column)
        return sql.SQL("DELETE FROM {} WHERE false").format(table)
    if op == "UPDATE":
        # The row's own value: triggers fire, and no key, check or unique index objects.
        cursor, value = session.open_row(table, target.column)
        return sql.SQL("UPDATE {} SET {} = {} WHERE CURRENT OF {}").format(
            table, sql.Identifier(target.column or ""), sql.Literal(value), cursor
        )
    if op == "DELETE":
        cursor, _ = session.open_row(table)
        return sql.SQL("DELETE FROM {} WHERE CURRENT OF {}").format(table, cursor)
    raise ValueError(op)


@dataclass(frozen=True)
class Known:
    """What the tables had before the migration, by bare table name: a probe stopped
    by one of these stops the same way before the migration (a row of defaults breaks
    a NOT NULL, a parent row is referenced), so it is the probe's, not the plan's."""

    constraints: frozenset[tuple[str, str]]  # (table, constraint)
    triggers: frozenset[tuple[str, str]]  # (table, trigger)

    @classmethod
    def of(cls, before: Fingerprint) -> Known:
        tables = before.tables.values()
        return cls(
            frozenset((t.name, k.name) for t in tables for k in t.constraints),
            frozenset((t.name, g.name) for t in tables for g in t.triggers),
        )


def _outcome(
    conn: Conn,
    op: str,
    run: Callable[[], sql.Composed],
    *,
    blame: Callable[[psycopg.Error], str | None] = lambda _exc: None,
) -> tuple[Outcome, str]:
    """Run ``run()``'s statement in a savepoint that is always undone, and judge it."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(run(), prepare=False)
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        if exc.sqlstate in _REFUSED:
            return "refused", message
        if exc.sqlstate in _NOT_APPLICABLE and op not in ("SELECT", "USAGE", "CREATE"):
            return "not applicable", message
        # Past the privilege check; what stopped it may be the migration's own work.
        culprit = blame(exc)
        if culprit is not None:
            return "blocked", f"{culprit}: {message}"
        return "allowed", message
    return "allowed", ""


def _blamed(exc: psycopg.Error, *, op: str, target: Target, known: Known | None) -> str | None:
    """The trigger or constraint the migration added that stopped a probe, if one did.

    A trigger is named by its function in the error's context (PL/pgSQL prints
    ``PL/pgSQL function name() line 3 at RAISE``); a constraint by the error itself.
    A row of defaults that breaks its own table's constraints is the probe's doing
    (the application never inserts it), so for INSERT only constraints of other
    tables count: the ones the table's triggers write to.
    """
    if known is None:
        return None
    context = exc.diag.context or ""
    for trigger, function in target.triggers:
        if (target.name, trigger) in known.triggers:
            continue
        if re.search(rf'function (?:[\w"$]+\.)?"?{re.escape(function)}"?\(', context):
            return f"trigger {trigger} on {target.qualified} (function {function}) raises"
    constraint, table = exc.diag.constraint_name, exc.diag.table_name
    if exc.sqlstate is None or not exc.sqlstate.startswith("23") or not constraint or not table:
        return None
    if (table, constraint) in known.constraints:
        return None
    if op == "INSERT" and table == target.name and exc.diag.schema_name == target.schema:
        return None
    where = f"{exc.diag.schema_name}.{table}" if exc.diag.schema_name else table
    return f"constraint {constraint} of {where}, added by the migration, stops it"


def _schema_statement(rule: PrivilegeRule, op: str) -> sql.Composed:
    if op == "USAGE":
        # Looking a name up in a schema needs USAGE; a missing name then says 42P01.
        name = sql.Identifier(rule.on, "pgcutover_no_such_relation").as_string()
        return sql.SQL("SELECT {}::regclass").format(sql.Literal(name))
    probe = sql.Identifier(rule.on, f"pgcutover_probe_{next(_probe_ids)}")
    return sql.SQL("CREATE TABLE {} ()").format(probe)


def _schema_attempts(session: RoleSession, rule: PrivilegeRule) -> list[Attempt]:
    attempts = []
    with session.transaction(freeze_sequences=False) as conn:
        for op in sorted(rule.allow | rule.deny):
            outcome, error = _outcome(conn, op, partial(_schema_statement, rule, op))
            attempts.append(Attempt(rule.role, op, rule.on, outcome, error))
    return attempts


def _table_attempts(
    session: RoleSession, rule: PrivilegeRule, targets: list[Target], *, known: Known | None
) -> list[Attempt]:
    """Every probe of a rule in one transaction (each in its own savepoint), so the
    sequences are restarted once per rule, and all rolled back together."""
    attempts = []
    with session.transaction() as conn:
        for target in targets:
            for op in sorted(rule.allow | rule.deny):
                why = _not_applicable(op, target)
                if why is not None:
                    attempts.append(Attempt(rule.role, op, target.qualified, "not applicable", why))
                    continue
                outcome, error = _outcome(
                    conn,
                    op,
                    partial(_probe, session, op, target),
                    blame=partial(_blamed, op=op, target=target, known=known),
                )
                attempts.append(Attempt(rule.role, op, target.qualified, outcome, error))
    return attempts


def _judge(rule: PrivilegeRule, attempts: list[Attempt]) -> Iterator[str]:
    for a in attempts:
        if a.outcome == "not applicable":
            continue
        if a.op in rule.allow and a.outcome == "refused":
            yield f"{a.role} cannot {a.op} on {a.target}: {a.error}"
        elif a.op in rule.allow and a.outcome == "blocked":
            yield f"{a.role} may {a.op} on {a.target}, but a {a.error}"
        elif a.op in rule.deny and a.outcome in ("allowed", "blocked"):
            yield f"{a.role} can {a.op} on {a.target}, which the plan says it must not"


def probe_privileges(
    conn: Conn,
    rules: Sequence[PrivilegeRule],
    *,
    login: LoginFor | None = None,
    must_log_in: Collection[str] = (),
    before: Fingerprint | None = None,
    judged: set[tuple[str, str]] | None = None,
) -> Check:
    """Try every (role, operation, object) of ``rules``; one check naming each surprise.

    ``login`` says how to log in as a role (see harness.invariants.acting); a role
    it gives no login for is tried by ``SET ROLE``. ``must_log_in``: the roles the
    application logs in as, for which NOLOGIN is itself a finding. ``before``: the
    database before the migration; with it, a probe stopped by a trigger or a
    constraint the migration added (a trigger that raises on every INSERT) is a
    finding naming it, not "allowed".

    ``judged`` collects (role, the server's message) of each refusal this check fails
    (an operation the plan allows, refused): other checks meeting the same refusal
    leave it to this one rather than fail a second time for one missing grant.
    """
    known = Known.of(before) if before is not None else None
    offenders: list[str] = []
    tried = skipped = 0
    rows = conn.execute("SELECT rolname::text, rolcanlogin FROM pg_roles").fetchall()
    roles = {str(r[0]): bool(r[1]) for r in rows}
    schemas = {str(r[0]) for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    # Every role the application logs in as, read on the server after the migration,
    # rules or none: whatever a step did at run time, pg_roles says what stands now.
    for role in sorted(set(must_log_in)):
        if role in roles and not roles[role]:
            offenders.append(f"{role} cannot log in (NOLOGIN), yet the application logs in as it")
    with RoleSessions(conn, login) as sessions:
        sessions.open({r.role: roles[r.role] for r in rules if r.role in roles})
        offenders.extend(sessions.refused.values())
        for rule in rules:
            session = sessions.get(rule.role)
            if rule.role not in roles:
                offenders.append(
                    f"role {rule.role} does not exist, so nothing can be tried as it "
                    "(the plan must CREATE ROLE it before granting to it)"
                )
                continue
            if rule.schema not in schemas:
                offenders.append(f"{rule.role} on {rule.on}: schema {rule.schema} does not exist")
                continue
            if session is None:  # its login was refused: said once above
                continue
            if rule.is_schema:
                attempts = _schema_attempts(session, rule)
            else:
                targets = _relations(conn, rule.schema, rule.relation)
                if not targets:
                    offenders.append(f"{rule.role} on {rule.on}: no table or view there to try")
                    continue
                attempts = _table_attempts(session, rule, targets, known=known)
            tried += sum(a.outcome != "not applicable" for a in attempts)
            skipped += sum(a.outcome == "not applicable" for a in attempts)
            offenders.extend(_judge(rule, attempts))
            if judged is not None:
                judged.update(
                    (a.role, a.error.strip())
                    for a in attempts
                    if a.op in rule.allow and a.outcome == "refused"
                )
        how = sessions.summary()
    not_applicable = (
        f"; {skipped} did not apply (views no one can write through, materialized views)"
        if skipped
        else ""
    )
    as_whom = f" ({how})" if how else ""
    return Check.of(
        "privileges.tried",
        offenders=list(dict.fromkeys(offenders)),
        ok=f"all {tried} operations tried as their roles were allowed or refused as planned"
        + not_applicable
        + as_whom,
        failed=f"{len(offenders)} of the planned privileges do not hold when tried "
        f"({tried} operations tried{not_applicable}){as_whom}",
    )
