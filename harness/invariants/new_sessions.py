"""``sessions.new_sessions_work``: a session opened after the migration, as each role, runs
what that role runs.

``ALTER DATABASE … SET search_path`` (or ``ALTER ROLE … SET``) reaches only sessions
opened afterwards, so the application's new sessions are where a migration's path
shows: a table left off it no longer resolves by its bare name. Each role the
application logs in as gets a new session of its own on the primary (its LOGIN,
its settings, its grants), where it runs

- its own workload reads, with a parameter row drawn from the data, in a read-only
  transaction that is rolled back;
- its workload writes under ``EXPLAIN``: names resolve and privileges are checked
  at executor start, yet nothing runs, so no row and no sequence moves;
- a ``count(*)`` of each table the layout moves that its privilege rules let it
  read, by its bare name. A table a rule denies it (or no rule gives it) is not
  counted: a refusal the plan declares is never a finding here;
- and, for the role the old sessions log in as, the plan's ``[sessions]`` queries.

A role the harness cannot log in as (no login known) is tried by the harness's own
new session, which reads everything, as before the workload had roles. A plan without
``[workload]`` runs the reads its traffic would (see harness.plan.default_workload).

A statement refused for lack of a privilege fails here unless ``privileges.tried``
fails the same refusal for the same role (one forgotten grant, one failed check), or
it is a ``[sessions]`` query, which no role is named for. A refusal no privilege rule
covers (a view left in the old schema, a privilege no rule names) is met by the
application and by no other check.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import psycopg

from harness.catalog import Fingerprint
from harness.connections import Conn, connect
from harness.invariants.acting import LoginFor
from harness.invariants.result import Check
from harness.invariants.sessions import default_queries
from harness.plan import Plan
from harness.plan.default_workload import workload_of
from harness.plan.workload import Workload, WorkloadQuery

__all__ = [
    "NullForMissing",
    "RoleQueries",
    "check_new_sessions_as_roles",
    "heaviest_reader",
    "parameter_rows",
    "role_queries",
    "run_queries",
    "unjudged",
]

HARNESS = "the harness"
REFUSED = "refused: "


class NullForMissing(dict[str, Any]):
    """A parameter row that answers NULL for a value only a previous statement returns."""

    def __missing__(self, key: str) -> None:
        return None


@dataclass
class RoleQueries:
    """What one role runs in its new session."""

    role: str | None  # None: the harness itself
    workload: list[WorkloadQuery] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)  # counts, [sessions] queries

    @property
    def count(self) -> int:
        return sum(len(q.sql) for q in self.workload) + len(self.plain)


def role_queries(
    plan: Plan, workload: Workload, after: Fingerprint, *, session_role: str | None
) -> list[RoleQueries]:
    """Each workload role's queries (see the module), and the harness's for the rest.

    ``session_role``: the role the old sessions log in as, which also runs the plan's
    ``[sessions]`` queries (the harness does, without one).
    """
    roles = {role: RoleQueries(role) for role in workload.roles}
    harness = RoleQueries(None)
    for q in workload.queries:
        (roles[q.role] if q.role is not None else harness).workload.append(q)
    tables = list(plan.layout.tables)
    for role, queries in roles.items():
        readable = [
            t for t in tables if plan.may_select(role, plan.layout.tables[t], t.split(".", 1)[1])
        ]
        queries.plain += default_queries(readable, catalog=after)
    if not roles:
        harness.plain += default_queries(tables, catalog=after)
    target = roles.get(session_role) if session_role is not None else None
    (target or harness).plain += plan.session_queries
    return [r for r in (*roles.values(), harness) if r.count]


def _failure(exc: psycopg.Error) -> str:
    message = (exc.diag.message_primary or str(exc)).strip()
    # A refusal for lack of a privilege is privileges.tried's to judge against the rules.
    return f"{REFUSED}{message}" if exc.sqlstate == "42501" else message


def parameter_rows(conn: Conn, q: WorkloadQuery, *, limit: int = 1) -> list[dict[str, Any]]:
    """Up to ``limit`` parameter rows for ``q``, drawn in ``conn``'s session; ``[{}]`` for a
    query that takes none."""
    if q.params is None:
        return [{}]
    cur = conn.execute(q.params.encode(), prepare=False)
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchmany(limit)]


def _params(conn: Conn, q: WorkloadQuery) -> dict[str, Any]:
    """One parameter row for ``q``, drawn in the role's own session."""
    return next(iter(parameter_rows(conn, q)), {})


def run_queries(conn: Conn, queries: RoleQueries) -> list[tuple[str, str]]:
    """(statement, the server's message) for each that fails; nothing is kept."""
    failures: list[tuple[str, str]] = []
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        # The queries run one after another inside one transaction here, which the
        # application's do not: a role's idle-in-transaction timeout must not end it.
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        for text in queries.plain:
            try:
                with conn.transaction():
                    conn.execute(text.encode(), prepare=False)
            except psycopg.Error as exc:
                failures.append((text, _failure(exc)))
        for q in queries.workload:
            try:
                with conn.transaction():
                    row = _params(conn, q)
            except psycopg.Error as exc:
                failures.append((str(q.params), f"(the parameters of {q.name}) {_failure(exc)}"))
                continue
            for text in q.sql:
                # A write is only explained: its names resolve and its privileges are
                # checked at executor start, and nothing runs, not even nextval().
                statement = text if q.kind == "read" else f"EXPLAIN {text}"
                try:
                    with conn.transaction():
                        conn.execute(statement.encode(), NullForMissing(row), prepare=False)
                except psycopg.Error as exc:
                    failures.append((text, _failure(exc)))
    return failures


def heaviest_reader(workload: Workload | None) -> str | None:
    """The role that reads the most: the one the ``sessions.*`` checks log in as."""
    reads: dict[str, int] = {}
    for q in workload.queries if workload is not None else ():
        if q.role is not None and q.kind == "read":
            reads[q.role] = reads.get(q.role, 0) + q.weight
    return max(sorted(reads), key=lambda r: reads[r]) if reads else None


def check_new_sessions_as_roles(
    plan: Plan,
    after: Fingerprint,
    *,
    harness_dsn: str,
    login: LoginFor | None,
    judged: Collection[tuple[str, str]] = (),
) -> Check:
    """Open a new session as each role (the harness for a role it cannot log in as)
    and run what the role runs; every failure is an offender naming the role.

    A role that cannot log in is ``privileges.tried``'s finding (or ``roles.created``'s),
    not this check's: its queries run in the harness's session, and the message says so.
    ``judged``: the refusals ``privileges.tried`` failed, as (role, message); one of
    them met here is counted in the reason, not failed twice.
    """
    workload = workload_of(plan)
    everyone = role_queries(plan, workload, after, session_role=heaviest_reader(workload))
    offenders: list[str] = []
    refused: list[str] = []
    done: list[str] = []
    harness = RoleQueries(None)
    for queries in everyone:
        how = login(queries.role) if login is not None and queries.role is not None else None
        opened = None if how is None else _session(how.dsn, queries)
        if opened is None:
            # No way in as the role: the harness's session runs it, reading everything.
            harness.workload += queries.workload
            harness.plain += [p for p in queries.plain if p not in harness.plain]
            if queries.role is not None:
                done.append(f"{queries.role}: run by the harness, no login as it")
            continue
        path, failures = opened
        done.append(f"{queries.role}: {queries.count} (search_path {path})")
        found, judged_here = unjudged(queries.role, failures, judged, guessed=plan.session_queries)
        refused += judged_here
        offenders += [f"as {queries.role}, search_path {path}: `{t}`: {m}" for t, m in found]
    if harness.count:
        path, failures = _session(harness_dsn, harness) or ("?", [("", "cannot log in")])
        # The harness reads everything the plan's roles may: a refusal of its own says
        # only that it runs as less than a superuser on a server someone else runs.
        refused += [m for _, m in failures if m.startswith(REFUSED)]
        failures = [(t, m) for t, m in failures if not m.startswith(REFUSED)]
        done.append(f"{HARNESS}: {harness.count} (search_path {path})")
        offenders += [f"as {HARNESS}, search_path {path}: `{t}`: {m}" for t, m in failures]
    count = sum(q.count for q in everyone)
    if refused:
        done.append(
            f"{len(refused)} refused for lack of a privilege, left to privileges.tried and "
            "the plan's rules (or a [sessions] query, run as a role the plan does not name)"
        )
    return Check.of(
        "sessions.new_sessions_work",
        offenders=offenders,
        ok=f"{count} application queries work in sessions opened after the migration, "
        f"each as the role that runs it ({'; '.join(done)})",
        failed="sessions opened after the migration cannot run the application's queries",
    )


def unjudged(
    role: str | None,
    failures: list[tuple[str, str]],
    judged: Collection[tuple[str, str]],
    *,
    guessed: Collection[str] = (),
) -> tuple[list[tuple[str, str]], list[str]]:
    """The failures that are this check's, and the refusals that are not.

    Not this check's: a refusal ``privileges.tried`` failed (``judged``), and one of a
    query ``guessed``, run as a role the plan does not name for it (its ``[sessions]``
    queries, which the heaviest reader runs). A refusal the plan's rules do not cover
    (a view left in the old schema, a privilege no rule names) is no other check's: the
    application meets it, so it is a finding here.
    """
    mine: list[tuple[str, str]] = []
    theirs: list[str] = []
    for text, message in failures:
        refusal = message[len(REFUSED) :] if message.startswith(REFUSED) else None
        if refusal is not None and ((role, refusal) in judged or text in guessed):
            theirs.append(message)
        else:
            mine.append((text, message))
    return mine, theirs


def _session(dsn: str, queries: RoleQueries) -> tuple[str, list[tuple[str, str]]] | None:
    """The new session's search_path and what failed in it; None if it cannot start."""
    try:
        conn = connect(dsn, application_name="pgcutover new session", timeout=10)
    except psycopg.Error:
        return None
    with conn:
        row = conn.execute("SHOW search_path").fetchone()
        return (str(row[0]) if row else "?"), run_queries(conn, queries)
