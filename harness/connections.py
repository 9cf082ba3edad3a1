"""Making connections: the one place that knows the rules every connection of the engine follows.

- libpq takes ``connect_timeout`` in whole seconds, treats anything below 2 as
  2 and 0 as "wait forever"; :func:`connect_timeout` rounds up and never
  returns 0, so no connection waits on the operating system for minutes.
- Prepared statements are off unless asked for: behind PgBouncer 1.18 in
  transaction pooling the server connection changes between transactions, and
  psycopg's automatic preparing (after 5 runs of a query) then fails with
  ``DuplicatePreparedStatement`` or "prepared statement does not exist".
- A refused connection is a :class:`~harness.errors.ConnectionFailed` that names
  the server without its password, says what libpq said, and what to do.
- Behind PgBouncer a query for a server that is down waits in PgBouncer's queue
  (``query_wait_timeout``, 120 sec by default), and PgBouncer ignores a cancel
  for a query that has no server yet: :func:`bounded` breaks the socket instead.
- WAL positions (:class:`Lsn`) and waiting for a standby to replay one, and the
  refusal to write to a standby, each said once.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors, generators, pq
from psycopg.rows import TupleRow, dict_row

from harness.dsn import redact
from harness.errors import ConnectionFailed, HarnessError, UsageError

__all__ = [
    "Conn",
    "DictConn",
    "Lsn",
    "abort_connection",
    "bounded",
    "connect",
    "connect_dicts",
    "connect_kwargs",
    "connect_primary",
    "connect_timeout",
    "describe",
    "fetch_bounded",
    "insert_lsn",
    "is_standby",
    "replay_target",
    "script_error",
    "send_script",
    "standby_refusal",
    "wait_for_replay",
]

#: A connection returning plain tuples, the row type every module of the engine uses.
Conn = psycopg.Connection[TupleRow]
#: A connection returning dicts by column name.
DictConn = psycopg.Connection[dict[str, Any]]

DEFAULT_FIX = (
    "check the DSN (host, port, user, password, database name) and that the server is running"
)


def connect_timeout(seconds: float) -> int:
    """libpq's ``connect_timeout``: whole seconds, at least 2 (libpq makes 1 into 2, 0 is never)."""
    return max(2, math.ceil(seconds))


def connect_kwargs(
    *, timeout: float, application_name: str | None = None, prepare_threshold: int | None = None
) -> dict[str, Any]:
    """The keyword arguments of every connection: for :func:`connect` and for client-side pools."""
    kwargs: dict[str, Any] = {
        "connect_timeout": connect_timeout(timeout),
        "prepare_threshold": prepare_threshold,
    }
    if application_name is not None:
        kwargs["application_name"] = application_name
    return kwargs


def describe(exc: BaseException) -> str:
    """What went wrong, on one line and without a password: for a message of the caller's own."""
    if isinstance(exc, ConnectionFailed):
        return exc.reason
    return redact(str(exc)).strip().replace("\n", " ") or type(exc).__name__


def connect(
    dsn: str,
    *,
    timeout: float = 10.0,
    application_name: str | None = None,
    autocommit: bool = True,
    prepare_threshold: int | None = None,
    fix: str = DEFAULT_FIX,
) -> Conn:
    """A connection, or a :class:`ConnectionFailed` that says which server, why, and ``fix``."""
    kwargs = connect_kwargs(
        timeout=timeout, application_name=application_name, prepare_threshold=prepare_threshold
    )
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except psycopg.Error as exc:
        raise _refused(dsn, exc, fix=fix) from None
    _own_bounds(conn)
    return conn


# A migration may give every session of its database a setting (ALTER DATABASE … SET
# statement_timeout = '1ms', default_transaction_read_only = on, session_replication_role
# = replica): what the application's sessions then meet is a finding, but the harness's
# own sessions must go on reading and repairing the database. They are the superuser's
# (the server reports it at login, no round trip); the application's roles keep theirs.
_OWN_SESSION = (
    "SELECT set_config('statement_timeout', '0', false),"
    " set_config('idle_in_transaction_session_timeout', '0', false),"
    " set_config('default_transaction_read_only', 'off', false),"
    " set_config('session_replication_role', 'origin', false)"
)


def _own_bounds(conn: psycopg.Connection[Any]) -> None:
    if conn.info.parameter_status("is_superuser") != "on" or conn.info.dbname == "pgbouncer":
        return  # an application's role, or PgBouncer's console (which has no SET)
    try:
        for attempt in range(3):  # a timeout of a millisecond may cancel this very statement
            try:
                conn.execute(_OWN_SESSION, prepare=False)
                break
            except psycopg.errors.QueryCanceled:
                if not conn.autocommit:
                    conn.rollback()
                if attempt == 2:
                    raise
        if not conn.autocommit:
            conn.commit()
    except BaseException:
        conn.close()
        raise


def connect_dicts(
    dsn: str,
    *,
    timeout: float = 10.0,
    application_name: str | None = None,
    prepare_threshold: int | None = None,
    fix: str = DEFAULT_FIX,
) -> DictConn:
    """:func:`connect` whose rows are dicts by column name: for SQL a plan's authors wrote."""
    kwargs = connect_kwargs(
        timeout=timeout, application_name=application_name, prepare_threshold=prepare_threshold
    )
    try:
        return psycopg.connect(dsn, autocommit=True, row_factory=dict_row, **kwargs)
    except psycopg.Error as exc:
        raise _refused(dsn, exc, fix=fix) from None


def _refused(dsn: str, exc: psycopg.Error, *, fix: str) -> ConnectionFailed:
    """Raised ``from None``: the cause would print libpq's text, password included."""
    # libpq's first line is the reason; the next ones are hints that ``fix`` replaces.
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    reason = redact(first) or type(exc).__name__
    return ConnectionFailed(
        f"cannot connect to {redact(dsn)}: {reason}; {fix}", reason=reason, sqlstate=exc.sqlstate
    )


def abort_connection(conn: Conn) -> None:
    """Break the socket under a connection another thread is blocked on.

    ``shutdown`` on a duplicate of the descriptor ends the conversation for both
    (the descriptor itself stays valid, so libpq never touches a closed one): the
    blocked ``execute`` returns at once with "server closed the connection".
    """
    try:
        fd = conn.pgconn.socket
        dup = socket.socket(fileno=os.dup(fd))
    except (OSError, psycopg.Error):
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


class _Watchdog:
    """Aborts one connection after ``timeout`` sec unless disarmed first."""

    def __init__(self, conn: Conn, timeout: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._armed = True
        self.fired = False
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                abort_connection(self._conn)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


@contextlib.contextmanager
def bounded(conn: Conn, *, timeout: float) -> Iterator[None]:
    """Everything ``conn`` does inside the block fails after ``timeout`` sec instead of hanging."""
    watchdog = _Watchdog(conn, timeout)
    try:
        yield
    except psycopg.OperationalError as exc:
        if watchdog.fired:
            raise psycopg.OperationalError(
                f"no answer from the server after {timeout:.2f} sec (timeout expired)"
            ) from exc
        raise
    finally:
        watchdog.disarm()


def fetch_bounded(
    conn: Conn, query: str, params: tuple[Any, ...] | None = None, *, timeout: float
) -> list[tuple[Any, ...]]:
    """Run ``query`` and fetch its rows, or fail after ``timeout`` sec instead of hanging."""
    with bounded(conn, timeout=timeout):
        return conn.execute(query, params, prepare=False).fetchall()


class Lsn(int):
    """A WAL position; prints the way PostgreSQL does (``16/B374D848``)."""

    @classmethod
    def parse(cls, text: str) -> Lsn:
        high, sep, low = text.partition("/")
        if not sep:
            raise ValueError(f"{text!r} is not a WAL position like '16/B374D848'")
        return cls((int(high, 16) << 32) | int(low, 16))

    def __str__(self) -> str:
        return f"{self >> 32:X}/{self & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"


# The header of a WAL page, and the longer one of a segment's first page (xlog_internal.h).
_PAGE_HEADER = 24
_LONG_PAGE_HEADER = 40


def insert_lsn(conn: Conn) -> Lsn:
    """The primary's WAL insert position now: what a standby must replay to see every commit."""
    # The insert position, not pg_current_wal_lsn() (the write position): a commit made
    # with synchronous_commit=off can still sit in WAL buffers, unwritten, and a target
    # short of the commit record would let a standby "catch up" without it.
    # At the start of a WAL page (after a WAL switch: a base backup ends with one) the insert
    # position is reported past the page's header, which no record ends at: a standby that
    # replayed everything stands at the page's start, and would wait for the next record
    # (an idle server writes one within 15 sec) to pass the header.
    row = conn.execute(
        "SELECT l::text, (pg_walfile_name_offset(l)).file_offset, "
        "current_setting('wal_block_size')::int FROM pg_current_wal_insert_lsn() AS l"
    ).fetchone()
    if row is None:
        raise psycopg.InterfaceError("pg_current_wal_insert_lsn() returned no row")
    lsn, offset, page = Lsn.parse(row[0]), int(row[1]), int(row[2])
    header = _LONG_PAGE_HEADER if offset == _LONG_PAGE_HEADER else _PAGE_HEADER
    return Lsn(lsn - header) if offset % page == header else lsn


def replay_target(conn: Conn) -> Lsn:
    """:func:`insert_lsn`, with the WAL flushed up to it: what a standby can replay now.

    A standby is sent only flushed WAL, and nothing flushes the records of transactions
    that never committed (rolled-back probes, a failed step's scratch transactions)
    until the next commit: on a primary whose writers wait, up to 15 sec (the next
    standby snapshot), and a wait for replay waited that long for nothing. A commit of
    its own, synchronous, flushes everything before it. ``conn`` must be idle.
    """
    target = insert_lsn(conn)
    try:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = on")
            conn.execute("SELECT pg_current_xact_id()")  # an xid: a commit record to flush
    except psycopg.Error:
        pass  # a login that cannot write: the next commit flushes it, as before
    return target


def wait_for_replay(conn: Conn, target: Lsn, *, timeout: float) -> Lsn | None:
    """Poll the server on ``conn`` until it has replayed ``target``; None after ``timeout`` sec.

    Returns the position replayed (at least ``target``). A server not in recovery
    (a primary, or a standby since promoted) has everything: ``target`` at once.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        if row is None or row[0] is None:
            return target
        replayed = Lsn.parse(row[0])
        if replayed >= target:
            return replayed
        if time.monotonic() + delay > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def is_standby(conn: Conn, *, timeout: float | None = None) -> bool:
    """Whether the server is in recovery; bounded by ``timeout`` sec when one is given."""
    query = "SELECT pg_is_in_recovery()"
    rows = (
        conn.execute(query, prepare=False).fetchall()
        if timeout is None
        else fetch_bounded(conn, query, timeout=timeout)
    )
    return bool(rows and rows[0][0])


def standby_refusal(subject: str, *, fix: str) -> str:
    """The one message for "this server cannot take writes": ``subject`` names it, redacted."""
    return (
        f"{subject} is a read-only standby (pg_is_in_recovery() is true) and cannot take "
        f"writes; {fix}"
    )


def connect_primary(
    dsn: str,
    *,
    fix: str,
    subject: str | None = None,
    error: type[HarnessError] = UsageError,
    timeout: float = 10.0,
    application_name: str | None = None,
) -> Conn:
    """An autocommit connection to a primary; ``error`` with :func:`standby_refusal` if not.

    The check is bounded by ``timeout``: through PgBouncer a server that is down
    can accept the login and then never answer.
    """
    conn = connect(dsn, timeout=timeout, application_name=application_name)
    try:
        standby = is_standby(conn, timeout=timeout)
    except BaseException:
        conn.close()
        raise
    if standby:
        conn.close()
        raise error(standby_refusal(subject or redact(dsn), fix=fix))
    return conn


def send_script(conn: Conn, script: str) -> list[pq.abc.PGresult]:
    """``script`` in one message (the simple query protocol): one round trip, and one
    result per statement, up to and including the first that failed (the server runs
    none after it: :func:`script_error`)."""
    with conn.lock:
        conn.pgconn.send_query(script.encode(conn.info.encoding))
        return conn.wait(generators.execute(conn.pgconn))


def script_error(conn: Conn, results: list[pq.abc.PGresult]) -> tuple[int, psycopg.Error] | None:
    """The failed statement of :func:`send_script`'s ``results``: its index, its error."""
    for index, result in enumerate(results):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            return index, errors.error_from_result(result, encoding=conn.info.encoding)
    return None
