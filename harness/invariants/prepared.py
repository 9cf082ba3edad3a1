"""Statements prepared before a step must still execute after it: ``sessions.prepared_statements``.

A prepared statement's result type is fixed when it is prepared, and its names
were resolved then, under the session's ``search_path`` of that moment. A step
that adds a column to a table a ``SELECT *`` reads makes the next execution fail
with ``cached plan must not change result type`` (SQLSTATE 0A000); a step that
moves a table away from that path makes it fail with ``relation … does not
exist`` (42P01). Only statements prepared *before* the step break: a session
opened, or a statement prepared, afterwards sees the new catalog. Behind a pooler
the sessions that hold them are its server connections, which live for
``server_lifetime`` (an hour in the seed plan) and are lent to every client; so
the deploy that follows a migration fails, on and off, until they are replaced.

This check prepares each of the application's statements (``[workload]`` and
``[sessions]`` queries) before the first step, in sessions it keeps open directly
on the primary and the replica, and through each PgBouncer that pools by session
(a client there keeps one server connection, so the statement stays where it was
prepared). After every step, and every step of the rollback, it revalidates each
statement with ``EXPLAIN EXECUTE`` — PostgreSQL re-analyses a stale statement
there exactly as on a real execution, and nothing runs, so no write reaches the
data — and names the step, the statement and the SQLSTATE of the first failure.

A transaction pool lends a different server connection to each transaction, so
this check cannot hold one there; its server connections are sessions like the
direct one, and what breaks in it breaks on them (the fixes say what to do there).

It also names an application configuration that breaks without any migration: a
driver that prepares (``[workload] prepare_threshold``) behind a transaction pool
of a PgBouncer without protocol-level prepared statements (before 1.21, or with
``max_prepared_statements = 0``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from harness.cluster import Endpoints
from harness.cluster.pooling import Poolers, PoolSettings
from harness.cluster.versions import parse_version
from harness.connections import Conn, connect, script_error, send_script
from harness.dsn import with_database
from harness.invariants.result import Check
from harness.plan import Plan

__all__ = [
    "PREPARED_ON_SINCE",
    "PREPARED_SINCE",
    "PreparedStatements",
    "Statement",
    "pgbouncer_version",
    "positional",
    "statements_of",
]

#: The first PgBouncer release that keeps track of protocol-level prepared statements
#: in transaction pooling (``max_prepared_statements``; on by default since 1.24).
PREPARED_SINCE = (1, 21)
PREPARED_ON_SINCE = (1, 24)  # max_prepared_statements defaults to 200 from here, 0 before
_PLACEHOLDER = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s")
# What a step can do to a statement prepared before it: change its result type
# (0A000), or leave a name it resolved no longer there (class 42, such as 42P01
# undefined table, 42703 column, 42883 function). A refused privilege (42501) is
# privileges.tried's finding, not a stale statement.
_STALE_CLASSES = ("0A", "42")
_NOT_STALE = ("42501",)


@dataclass(frozen=True)
class Statement:
    """One statement the application sends, as a prepared statement of its own name."""

    name: str  # the prepared statement's name in every session
    source: str  # how the plan names it: "product_detail" or "[sessions] query 2"
    text: str  # with $1, $2 … for the plan's %(name)s
    params: int
    read: bool  # reads also go to the replica and its pooler


def positional(text: str) -> tuple[str, int]:
    """``text`` with each ``%(name)s`` made ``$n`` (one number per name) and ``%%`` made ``%``."""
    numbers: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"${numbers.setdefault(m['name'], len(numbers) + 1)}"

    return _PLACEHOLDER.sub(number, text).replace("%%", "%"), len(numbers)


def statements_of(plan: Plan) -> list[Statement]:
    """Each statement of the plan's workload and its ``[sessions]`` queries, once."""
    found: list[Statement] = []
    seen: set[str] = set()

    def add(source: str, raw: str, *, read: bool) -> None:
        text, params = positional(raw)
        if text in seen:
            return
        seen.add(text)
        found.append(Statement(f"pgcutover_p{len(found) + 1}", source, text, params, read))

    for query in plan.workload.queries if plan.workload is not None else ():
        for i, raw in enumerate(query.sql):
            source = query.name if len(query.sql) == 1 else f"{query.name} #{i + 1}"
            add(source, raw, read=query.kind == "read")
    for i, raw in enumerate(plan.session_queries, 1):
        add(f"[sessions] query {i}", raw, read=True)
    return found


def pgbouncer_version(endpoints: Endpoints) -> tuple[int, ...] | None:
    """The writer PgBouncer's version from its admin console; None where none answers."""
    if endpoints.writer == endpoints.primary:
        return None
    try:
        with connect(with_database(endpoints.writer, "pgbouncer"), timeout=5) as conn:
            row = conn.execute("SHOW VERSION").fetchone()
    except psycopg.Error:
        return None
    return parse_version(str(row[0])) if row else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _stale(exc: psycopg.Error) -> bool:
    code = exc.sqlstate or ""
    return code.startswith(_STALE_CLASSES) and code not in _NOT_STALE


def _error(exc: psycopg.Error) -> str:
    return f"{(exc.diag.message_primary or str(exc)).strip()} [SQLSTATE {exc.sqlstate}]"


@dataclass
class _Session:
    label: str
    conn: Conn
    on_replica: bool
    prepared: list[Statement]


def _explain(statement: Statement) -> sql.Composed:
    nulls = sql.SQL(", ").join([sql.NULL] * statement.params)
    args = sql.SQL("({})").format(nulls) if statement.params else sql.SQL("")
    return sql.SQL("EXPLAIN EXECUTE {}{}").format(sql.Identifier(statement.name), args)


class PreparedStatements:
    """Sessions holding the application's statements prepared before the first step."""

    def __init__(
        self,
        plan: Plan,
        endpoints: Endpoints,
        *,
        wait_for_replica: Callable[[], None],
        login: Callable[[str], str] | None = None,
        poolers: Poolers | None = None,
    ) -> None:
        """``login`` gives the DSN for a path (primary, replica, writer, reader) as the
        application's role; without it the sessions use ``endpoints`` as they are."""
        self.statements = statements_of(plan)
        self.poolers = poolers or Poolers()
        self.prepare_threshold = plan.workload.prepare_threshold if plan.workload else None
        self.pgbouncer = pgbouncer_version(endpoints)
        self._wait_for_replica = wait_for_replica
        self.unprepared: dict[str, str] = {}  # statement name -> why it could not be prepared
        self.broken: dict[tuple[str, str], tuple[str, str]] = {}  # (statement, session) -> ...
        self.unresolved = 0  # statements that fail afresh too: sessions.keep_working's finding
        pooled = endpoints.writer != endpoints.primary

        def dsn(path: str, plain: str) -> str:
            return login(path) if login is not None else plain

        targets: list[tuple[str, str, bool]] = [
            ("direct to the primary", dsn("primary", endpoints.primary), False)
        ]
        if endpoints.replica != endpoints.primary:
            targets.append(("direct to the replica", dsn("replica", endpoints.replica), True))
        # Only a session pool keeps a client on one server connection across steps.
        if pooled and self.poolers.writer.pool_mode == "session":
            targets.append(("PgBouncer writer", dsn("writer", endpoints.writer), False))
        reader_pooled = pooled and endpoints.reader != endpoints.writer
        if reader_pooled and self.poolers.reader.pool_mode == "session":
            targets.append(("PgBouncer reader", dsn("reader", endpoints.reader), True))
        self.sessions: list[_Session] = []
        try:
            for label, target, on_replica in targets:
                self.sessions.append(self._open(label, target, on_replica=on_replica))
        except BaseException:
            self.close()
            raise

    def _open(self, label: str, dsn: str, *, on_replica: bool) -> _Session:
        if on_replica:
            self._wait_for_replica()
        conn = connect(dsn)
        session = _Session(label, conn, on_replica, [])
        for statement in self.statements:
            if on_replica and not statement.read:
                continue
            exc = self._prepare(conn, statement)
            if exc is None:
                session.prepared.append(statement)
            else:
                self.unprepared.setdefault(statement.name, _error(exc))
        return session

    def _prepare(self, conn: Conn, statement: Statement) -> psycopg.Error | None:
        """PREPARE ``statement`` in ``conn``, and revalidate it once: the error, if any."""
        try:
            conn.execute(
                sql.SQL("PREPARE {} AS {}").format(
                    sql.Identifier(statement.name), sql.SQL(statement.text)
                )
            )
        except psycopg.Error as exc:
            return exc
        return self._revalidate(conn, statement)

    def _revalidate(self, conn: Conn, statement: Statement) -> psycopg.Error | None:
        """Re-analysed as on a real execution, and not run: the error a stale one raises."""
        try:
            conn.execute(_explain(statement))
        except psycopg.Error as exc:
            return exc
        return None

    def _failing(self, conn: Conn, statements: list[Statement]) -> list[Statement]:
        """The statements whose revalidation fails: all in one message while none does,
        so a session costs one round trip per step instead of one per statement."""
        failing: list[Statement] = []
        while statements:
            script = sql.SQL(";\n").join(_explain(st) for st in statements).as_string(conn)
            failed = script_error(conn, send_script(conn, script))
            if failed is None:
                break
            index = failed[0]  # the server ran none after it
            failing.append(statements[index])
            statements = statements[index + 1 :]
        return failing

    def after(self, step_label: str, *, wait_for_replica: Callable[[], None] | None = None) -> None:
        """Execute every statement in every session; remember the first step that broke each.

        A statement that fails is prepared again in the same session. Only when that
        works is the failure the prepared statement's own (this check's finding); when
        the text fails afresh too, the session cannot run the query at all, which is
        ``sessions.keep_working``'s finding, and the statement is no longer followed.
        ``wait_for_replica``: this step's wait, when other probes share it.
        """
        for on_replica in (False, True):
            sessions = [s for s in self.sessions if s.on_replica == on_replica]
            if on_replica and sessions:
                (wait_for_replica or self._wait_for_replica)()
            for session in sessions:
                followed = [
                    st for st in session.prepared if (st.name, session.label) not in self.broken
                ]
                gone = [
                    st
                    for st in self._failing(session.conn, followed)
                    if not self._still(session, st, step_label)
                ]
                session.prepared = [st for st in session.prepared if st not in gone]

    def _still(self, session: _Session, statement: Statement, step_label: str) -> bool:
        """Whether ``statement`` stays prepared in ``session``; a stale one is recorded."""
        exc = self._revalidate(session.conn, statement)
        if exc is None or not _stale(exc):
            return True
        session.conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(statement.name)))
        if self._prepare(session.conn, statement) is not None:
            self.unresolved += 1
            return False
        self.broken[(statement.name, session.label)] = (step_label, _error(exc))
        return True

    def _fixes(self, errors: set[str]) -> str:
        writer: PoolSettings = self.poolers.writer
        fixes = []
        if any("SQLSTATE 0A000" in e for e in errors):
            fixes.append(
                "name the columns instead of `*` (a prepared statement's result type is "
                "fixed when it is prepared)"
            )
        if any("SQLSTATE 0A000" not in e for e in errors):
            fixes.append(
                "leave the old name resolving where the statement found it (a compatibility "
                "view) until every session that prepared it is gone"
            )
        if writer.pool_mode == "transaction":
            fixes.append(
                "after the step, `RECONNECT` the database on each PgBouncer's admin console "
                f"(its server connections keep the statements up to server_lifetime, "
                f"{writer.server_lifetime} sec) or `DEALLOCATE ALL` on each server connection"
            )
        else:
            fixes.append(
                "after the step, have the application reconnect or `DEALLOCATE ALL` (its "
                "pooled sessions keep their server connections)"
            )
        fixes.append("or a pooler or driver that re-prepares and retries on SQLSTATE 0A000")
        return "; ".join(fixes)

    def _configuration(self) -> list[str]:
        """The driver's preparing against the writer's pooling, whatever the steps do."""
        writer = self.poolers.writer
        if self.prepare_threshold is None or writer.pool_mode != "transaction":
            return []
        version = self.pgbouncer
        if version is None:
            return []
        limit = writer.max_prepared_statements
        on_by_default = version >= PREPARED_ON_SINCE
        if version >= PREPARED_SINCE and (limit > 0 if limit is not None else on_by_default):
            return []
        off = (
            f"with max_prepared_statements = {limit if limit is not None else 0}"
            if version >= PREPARED_SINCE
            else "which keeps no prepared statements"
        )
        return [
            f"the application's driver prepares its statements ([workload] prepare_threshold "
            f"= {self.prepare_threshold}) and the PgBouncer writer (PgBouncer "
            f"{_dotted(version)}) pools by transaction, {off}: one prepared on one server "
            "connection is executed on another "
            "(prepared statement does not exist, SQLSTATE 26000) or prepared again where "
            "another client's is (42P05), whether or not a step ran; PgBouncer "
            f"{_dotted(PREPARED_SINCE)} or later with max_prepared_statements > 0 (the "
            "default from 1.24) fixes it, or turn the driver's preparing off (Prisma: "
            "pgbouncer=true in the URL; psycopg: prepare_threshold=None)"
        ]

    def check(self) -> Check:
        by_statement: dict[tuple[str, str, str], list[str]] = {}
        for (name, label), (step, error) in self.broken.items():
            by_statement.setdefault((name, step, error), []).append(label)
        order = {s.name: i for i, s in enumerate(self.statements)}
        named = {s.name: s for s in self.statements}
        offenders = []
        for (name, step, error), labels in sorted(
            by_statement.items(), key=lambda item: (order[item[0][0]], item[0][1:])
        ):
            statement = named[name]
            text = " ".join(statement.text.split())
            offenders.append(
                f"{statement.source}: `{text}`, prepared before the migration, fails from "
                f"{step} on ({', '.join(sorted(labels))}), where the same text prepared "
                f"again works: {error}"
            )
        if offenders:
            offenders.append("fix: " + self._fixes({e for _n, _s, e in by_statement}))
        offenders += self._configuration()
        held = sum(len(s.prepared) for s in self.sessions) + self.unresolved
        where = ", ".join(s.label for s in self.sessions)
        left = f"; {len(self.unprepared)} could not be prepared" if self.unprepared else ""
        if self.unresolved:
            left += (
                f"; {self.unresolved} stopped resolving in their sessions even prepared again "
                "(sessions.keep_working names those)"
            )
        return Check.of(
            "sessions.prepared_statements",
            offenders=offenders,
            ok=f"{held} prepared statements of the application's {len(self.statements)} "
            f"kept executing after every step and the rollback ({where}){left}",
            failed="statements the application prepared before the migration stop executing "
            "through it",
        )

    def close(self) -> None:
        for session in self.sessions:
            session.conn.close()
