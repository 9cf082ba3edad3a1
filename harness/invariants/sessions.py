"""Sessions opened before the migration must keep working through it.

``ALTER DATABASE … SET search_path`` reaches only sessions opened afterwards.
Every connection already open — in the application's pool, and PgBouncer's own
server connections, which live up to ``server_lifetime`` (an hour for the
plan's writer) — keeps the old path; for those, an unqualified table name that
moved away stops resolving at the moment the step commits. This check holds
such sessions open across every step and runs the application's unqualified
queries after each one, naming the step that broke each query.

Working is not only "no error": after each step every old session runs the
queries inside the snapshot of a session opened at that moment on the same
server (``pg_export_snapshot()`` / ``SET TRANSACTION SNAPSHOT``), and must get
the same rows. A shared snapshot makes the comparison exact while the
application keeps writing. Given a ``login``, the sessions log in as the
application's role rather than as the harness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import IsolationLevel, pq, sql

from harness.catalog import Fingerprint
from harness.cluster import Endpoints
from harness.connections import Conn, connect, describe, script_error, send_script
from harness.errors import ConnectionFailed, UsageError
from harness.invariants.not_run import path_label
from harness.invariants.result import Check

__all__ = ["OldSessions", "default_queries", "failing_queries"]


#: a probe counts at most this many rows of a table, and one more to say "more"
COUNTED = 10_000
#: The probe's queries run in every session at once, beside the traffic: parallel
#: workers only multiply the processes sharing the cores. Seven sessions counting the
#: kct plan's view of orders at scale 100 three times took 4.1-4.8 s with them, 1.3-1.4 s
#: without (alone: 236 ms against 97 ms). Only for the probe's own transaction.
_SERIAL = "SET LOCAL max_parallel_workers_per_gather = 0"
# Stands for the query when the session opened to compare with could not log in, or
# could not even begin its transaction (a statement timeout of a millisecond).
_LOGIN = "(log in)"


def default_queries(
    tables: Iterable[str], extra: Iterable[str] = (), *, catalog: Fingerprint | None = None
) -> list[str]:
    """A count of each table by its bare name, as the application names it, then ``extra``.

    The count stops past :data:`COUNTED` rows: enough to tell a table from an empty
    one or another of different size, and every probing session runs it after every
    step — a full count of a table of millions, in five sessions at a time, took most
    of a gate at scale 100. A partition is left out where ``catalog`` shows it is
    one: the application names the partitioned table, and a plan moves its
    partitions along with it (they have no compatibility view of their own, nor need one).
    """
    partitions = {t.name for t in (catalog.tables.values() if catalog else ()) if t.partition_bound}
    bare = sorted({t.split(".", 1)[-1] for t in tables} - partitions)
    count = sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT {}) AS counted")
    return [
        count.format(sql.Identifier(t), sql.Literal(COUNTED + 1)).as_string() for t in bare
    ] + list(extra)


def failing_queries(conn: Conn, queries: list[str]) -> list[tuple[str, str]]:
    """(query, the server's message) for each query of ``queries`` that fails on ``conn``."""
    failures = []
    for query in queries:
        try:
            conn.execute(query.encode(), prepare=False)
        except psycopg.Error as exc:
            failures.append((query, (exc.diag.message_primary or str(exc)).strip()))
    return failures


@dataclass
class _Session:
    label: str
    conn: Conn
    on_replica: bool


Outcome = tuple[bool, str]  # (succeeded, the rows as text or the error)


def _outcome(conn: Conn, query: str) -> Outcome:
    """One query under a savepoint, so a failure leaves the snapshot's transaction usable."""
    try:
        with conn.transaction():
            return _batch(conn, [query])[query]
    except psycopg.Error as exc:
        return False, (exc.diag.message_primary or str(exc)).strip()
    except _Unbatched:
        return False, "several statements in one query: give each its own"


def _outcomes(conn: Conn, queries: list[str]) -> dict[str, Outcome]:
    """Every query on the transaction's snapshot: all in one message under one savepoint
    while none fails, each under its own once one does. One round trip per query, after
    every step, costs seconds while the traffic's clients share the harness's process."""
    try:
        with conn.transaction():
            return _batch(conn, queries)
    except (psycopg.Error, _Unbatched):
        return {query: _outcome(conn, query) for query in queries}


class _Unbatched(Exception):
    """The server answered with more results than queries: one held several statements."""


def _batch(conn: Conn, queries: list[str]) -> dict[str, Outcome]:
    """The queries sent as one script (the simple query protocol), each answered alone,
    rows as the server's text: the same form whether sent together or one by one."""
    # A ";" on a line of its own ends a query even after a trailing line comment.
    results = send_script(conn, "\n;\n".join(q.strip().rstrip(";") for q in queries))
    failed = script_error(conn, results)
    if failed is not None:
        raise failed[1]  # inside the savepoint's block, which rolls it back on the way out
    if len(results) != len(queries):
        raise _Unbatched
    answers = zip(queries, results, strict=True)
    return {query: (True, _rows(result, conn.info.encoding)) for query, result in answers}


def _rows(result: pq.abc.PGresult, encoding: str) -> str:
    rows = [
        tuple(
            None if (v := result.get_value(r, c)) is None else bytes(v).decode(encoding)
            for c in range(result.nfields)
        )
        for r in range(result.ntuples)
    ]
    return repr(rows)[:200]


class OldSessions:
    """Sessions opened now, before the first step; queried again after every step."""

    def __init__(
        self,
        endpoints: Endpoints,
        queries: list[str],
        *,
        wait_for_replica: Callable[[], None],
        via_pooler: bool = True,
        login: Callable[[str], str] | None = None,
    ) -> None:
        """``login`` gives the DSN for a path (primary, replica, writer, reader) as the
        application's role; without it the sessions use ``endpoints`` as they are."""
        self.queries = queries
        self._wait_for_replica = wait_for_replica
        names = {
            endpoints.primary: "primary",
            endpoints.replica: "replica",
            endpoints.writer: "writer",
            endpoints.reader: "reader",
        }

        def dsn_for(dsn: str) -> str:
            return login(names[dsn]) if login is not None else dsn

        self._fresh = {False: dsn_for(endpoints.primary), True: dsn_for(endpoints.replica)}
        self.broken: dict[
            tuple[str, str], tuple[str, str]
        ] = {}  # (session, query) -> (step, error)
        targets = [("direct to the primary", endpoints.primary, False)]
        if via_pooler and endpoints.writer != endpoints.primary:
            targets.append(("PgBouncer writer", endpoints.writer, False))
        if endpoints.reader != endpoints.writer:
            label = path_label(endpoints, "reader") if via_pooler else "replica"
            targets.append((label, endpoints.reader, True))
        self.sessions = [
            # No server-side prepared statements: transaction pooling cannot keep them.
            _Session(label, connect(dsn_for(dsn)), replica)
            for label, dsn, replica in targets
        ]
        failures = self._run_all()
        if failures:
            self.close()
            raise UsageError(
                "the application queries fail before any step ran, so they cannot show what "
                "a step breaks; fix them in [sessions] queries of plan.toml:\n"
                + "\n".join(f"  {s}: {q}: {e}" for s, q, e in failures)
            )

    def _run_all(self, wait: Callable[[], None] | None = None) -> list[tuple[str, str, str]]:
        """The primary's sessions and the replica's side by side: the replica's wait for
        the replay and its queries need not queue behind the primary's."""
        sides = [
            [s for s in self.sessions if s.on_replica == on_replica] for on_replica in (False, True)
        ]

        def side(sessions: list[_Session]) -> list[tuple[str, str, str]]:
            on_replica = sessions[0].on_replica
            if on_replica:
                (wait or self._wait_for_replica)()
            return self._compare(sessions, fresh_dsn=self._fresh[on_replica])

        with ThreadPoolExecutor(max_workers=2) as pool:
            found = list(pool.map(side, [side for side in sides if side]))
        return [failure for side in found for failure in side]

    def _compare(self, sessions: list[_Session], *, fresh_dsn: str) -> list[tuple[str, str, str]]:
        """Each old session against a session opened now, on one snapshot of one server;
        all of them at once, since the snapshot is shared and each has a session of its own."""
        # A step that stops new sessions (a connection limit, a statement timeout of a
        # millisecond for the database) is a finding of its own; the old sessions wait
        # for the next round.
        server = "the replica" if sessions[0].on_replica else "the primary"
        try:
            opened = connect(fresh_dsn)
        except ConnectionFailed as exc:
            return [(server, _LOGIN, exc.reason)]
        with opened as fresh:
            try:
                fresh.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                row = fresh.execute("SELECT pg_export_snapshot()").fetchone()
                fresh.execute(_SERIAL)
            except psycopg.Error as exc:
                return [(server, _LOGIN, describe(exc))]
            snapshot = str(row[0]) if row else ""
            with ThreadPoolExecutor(max_workers=len(sessions) + 1) as pool:
                expected = pool.submit(_outcomes, fresh, self.queries)
                found = list(pool.map(lambda s: self._differences(s, snapshot, expected), sessions))
            fresh.execute("ROLLBACK")
        return [
            (session.label, query, message)
            for session, differences in zip(sessions, found, strict=True)
            for query, message in differences
        ]

    def _differences(
        self, session: _Session, snapshot: str, expected: Future[dict[str, Outcome]]
    ) -> list[tuple[str, str]]:
        conn = session.conn
        found: list[tuple[str, str]] = []
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                conn.execute(_SERIAL)
                outcomes = _outcomes(conn, self.queries)
        except psycopg.Error as exc:
            return [(q, (exc.diag.message_primary or str(exc)).strip()) for q in self.queries]
        finally:
            conn.isolation_level = None
        fresh = expected.result()
        for query, (ok, result) in outcomes.items():
            if not ok:
                found.append((query, result))
            elif fresh[query][0] and fresh[query][1] != result:
                found.append(
                    (
                        query,
                        f"returns {result} here but {fresh[query][1]} in a session "
                        "opened now, on the same snapshot",
                    )
                )
        return found

    def after(self, step_label: str, *, wait_for_replica: Callable[[], None] | None = None) -> None:
        """Run every query in every session; remember the first step that broke each.

        ``wait_for_replica``: this step's wait, when other probes share it."""
        for label, query, error in self._run_all(wait_for_replica):
            self.broken.setdefault((label, query), (step_label, error))

    def check(self, *, phase: str) -> Check:
        by_query: dict[tuple[str, str, str], list[str]] = {}
        offenders = []
        for (label, query), (step, error) in self.broken.items():
            if query == _LOGIN:
                offenders.append(
                    f"a session opened on {label} after {step}, as the application logs in, "
                    f"fails: {error}"
                )
            else:
                by_query.setdefault((query, step, error), []).append(label)
        offenders += [
            f"`{query}` fails from {step} on, in sessions opened before the migration "
            f"({', '.join(labels)}): {error}"
            for (query, step, error), labels in sorted(by_query.items())
        ]
        where = ", ".join(s.label for s in self.sessions)
        return Check.of(
            f"sessions.{phase}",
            offenders=offenders,
            ok=f"{len(self.queries)} application queries kept working after every step "
            f"in sessions opened before it ({where})",
            failed="sessions that were open before the migration break part way through it",
        )

    def close(self) -> None:
        for session in self.sessions:
            session.conn.close()
