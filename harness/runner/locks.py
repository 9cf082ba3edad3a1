"""Taking locks on a live database without stopping the application, and one runner at a time.

A DDL statement that waits for ACCESS EXCLUSIVE puts every later reader of
that table in the queue behind it, so the time the runner waits for a lock is
time the application stands still. The runner therefore waits only briefly per
attempt (``lock_timeout``, 200 ms by default), backs off with jitter so that
queued readers drain, and gives up after a total budget with the sessions that
stood in its way named: that is contention, not a defect of the plan.

Two runners on one database would interleave their steps and their ledger
rows; a session-level advisory lock lets only the first one in.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from harness.connections import Conn, connect
from harness.errors import RunInProgress
from harness.routing.retry import RetryPolicy

__all__ = [
    "Blocker",
    "BlockerWatch",
    "backoff",
    "claim_database",
    "likely_blockers",
    "parse_duration",
    "step_application_name",
]


# The advisory lock every pgcutover runner takes on the database it changes: two
# int4 keys ("pgct" in ASCII, 1) so that it cannot meet an application's bigint key.
ADVISORY_KEY = (0x70676374, 1)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h)\s*$")
# NAMEDATALEN - 1: the server truncates a longer application_name silently.
_NAME_BYTES = 63


def parse_duration(text: str) -> float:
    """Seconds in a PostgreSQL duration such as ``"200ms"`` or ``"2s"``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like '200ms' or '2s'")
    return float(match[1]) * _UNITS[match[2]]


def step_application_name(*, plan: str, label: str) -> str:
    """What ``pg_stat_activity`` shows for a running step: an operator knows whom to ask."""
    name = f"pgcutover {plan} {label}"
    return name.encode()[:_NAME_BYTES].decode(errors="ignore")


# The application's own retry curve (harness.routing), slower: a step's lock waits are
# longer than a request's.
_STEP_RETRY = RetryPolicy(backoff_min=0.1, backoff_max=2.0)


def backoff(attempt: int, *, jitter: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0-based): 0.1 s doubling up to 2 s.

    Half of it is random, so that two runners (or a runner and a retrying
    application) do not keep colliding at the same instants.
    """
    return round(_STEP_RETRY.delay(attempt, jitter=jitter), 3)


@dataclass(frozen=True)
class Blocker:
    """A session holding a lock the runner waited for, as ``pg_stat_activity`` shows it.

    ``backend_type`` tells a client's session from a server process (an
    autovacuum worker, a WAL sender): those have no application_name and no user
    to ask, and an autovacuum worker has its own rule for giving way.
    """

    pid: int
    application: str
    user: str
    state: str
    age: float  # seconds since its transaction (or its query) began
    query: str
    backend_type: str = "client backend"
    deadlock_timeout: str = "1s"  # the server's, as SHOW prints it

    def __str__(self) -> str:
        query = " ".join(self.query.split())
        if len(query) > 120:
            query = query[:117] + "..."
        if self.backend_type == "autovacuum worker":
            rule = _WRAPAROUND if "to prevent wraparound" in query else _AUTOVACUUM
            rule = rule.format(deadlock_timeout=self.deadlock_timeout)
            running = f"running {self.age:.1f} sec"
            return f"pid {self.pid} (an autovacuum worker, `{query}`, {running}; {rule})"
        if self.backend_type and self.backend_type != "client backend":
            return (
                f"pid {self.pid} (a {self.backend_type}, a server process, not a client's "
                f"session, running {self.age:.1f} sec, `{query}`)"
            )
        app = f"application {self.application!r}" if self.application else "no application_name"
        return (
            f"pid {self.pid} ({app}, user {self.user}, {self.state or 'unknown state'}, "
            f"transaction open {self.age:.1f} sec, last query `{query}`)"
        )


# PostgreSQL cancels an autovacuum that blocks a lock request only when the waiter's
# deadlock check runs, deadlock_timeout after it began waiting (proc.c, every version
# since 8.3); one running to prevent wraparound is never cancelled.
_AUTOVACUUM = (
    "it gives way to a waiting lock only after deadlock_timeout ({deadlock_timeout} here), so "
    "a [runner] lock_timeout no longer than that gives up first on every attempt: set "
    "lock_timeout above deadlock_timeout for this plan, or run when the vacuum is done"
)
_WRAPAROUND = (
    "a vacuum to prevent wraparound never gives way to a waiting lock: wait for it to "
    "finish, then run again"
)

# Each query returns: pid, application, user, state, age in seconds, query, backend
# type, and the server's deadlock_timeout.
_BLOCKING = """
    SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
           coalesce(a.state, ''),
           extract(epoch FROM now() - coalesce(a.xact_start, a.query_start, a.backend_start))
               ::float8,
           coalesce(a.query, ''), coalesce(a.backend_type, ''),
           current_setting('deadlock_timeout')
      FROM pg_stat_activity a
     WHERE a.pid = ANY(pg_blocking_pids(%s))
     ORDER BY 5 DESC
"""
# Without a wait to look at, the likeliest blockers: other sessions of this database
# in an open transaction that holds a lock on a relation, oldest first.
_LIKELY = """
    SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
           coalesce(a.state, ''),
           extract(epoch FROM now() - coalesce(a.xact_start, a.query_start, a.backend_start))
               ::float8,
           coalesce(a.query, ''), coalesce(a.backend_type, ''),
           current_setting('deadlock_timeout')
      FROM pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
       AND a.xact_start IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
                      AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database()))
     ORDER BY 5 DESC LIMIT 5
"""
_ADVISORY_HOLDER = """
    SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
           coalesce(a.state, ''),
           extract(epoch FROM now() - a.backend_start)::float8,
           coalesce(a.query, ''), coalesce(a.backend_type, ''),
           current_setting('deadlock_timeout')
      FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
     WHERE l.locktype = 'advisory' AND l.granted
       AND l.classid = %s AND l.objid = %s AND l.objsubid = 2
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _blockers(rows: list[tuple[object, ...]]) -> list[Blocker]:
    return [
        Blocker(
            int(str(r[0])),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            float(str(r[4])),
            str(r[5]),
            backend_type=str(r[6]),
            deadlock_timeout=str(r[7]),
        )
        for r in rows
    ]


def likely_blockers(conn: Conn) -> list[Blocker]:
    """Sessions of this database holding relation locks in an open transaction, oldest first."""
    return _blockers(conn.execute(_LIKELY).fetchall())


class BlockerWatch:
    """Watches, from a connection of its own, who blocks the runner's session while it waits.

    Once a lock wait has timed out, the waiting session is no longer waiting and
    ``pg_blocking_pids`` has nothing to say about it; only a second session that
    looks during the wait sees the blocker. Started after the first lock timeout,
    so that a run without contention never pays for it.
    """

    def __init__(self, dsn: str, *, pid: int, interval: float) -> None:
        self._dsn = dsn
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seen: dict[int, Blocker] = {}
        self._thread = threading.Thread(target=self._loop, name="pgcutover-lock-watch", daemon=True)

    def start(self) -> BlockerWatch:
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            with connect(self._dsn, timeout=5, application_name="pgcutover lock watch") as conn:
                while not self._stop.is_set():
                    found = _blockers(conn.execute(_BLOCKING, (self._pid,)).fetchall())
                    with self._lock:
                        for blocker in found:
                            self._seen[blocker.pid] = blocker
                    self._stop.wait(self._interval)
        except psycopg.Error:
            return  # the names are a courtesy; the runner's own error says what matters

    def seen(self) -> list[Blocker]:
        with self._lock:
            return sorted(self._seen.values(), key=lambda b: -b.age)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def claim_database(conn: Conn, *, what: str) -> None:
    """Take the runner's advisory lock for this session, or name who holds it.

    Session-level: it is released when the connection ends, however the runner
    ends (a kill -9 included, once the server notices the closed socket).
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", ADVISORY_KEY).fetchone()
    if row is not None and row[0]:
        return
    holders = _blockers(conn.execute(_ADVISORY_HOLDER, ADVISORY_KEY).fetchall())
    holder = str(holders[0]) if holders else "a session that has just ended"
    raise RunInProgress(
        f"another pgcutover migrate or rollback is running on database "
        f"{conn.info.dbname!r}: its session is {holder}; nothing was done by this {what}: "
        "wait for it to finish (or, if it is stuck, end it with "
        f"SELECT pg_terminate_backend({holders[0].pid if holders else 'pid'})) and run again"
    )
