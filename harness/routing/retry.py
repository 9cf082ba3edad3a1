"""Transactions an application can retry safely: again when nothing was committed, never twice.

A primary that restarts, fails over or is cut off by PgBouncer ends every open
transaction. Those transactions were rolled back by the server, so running them
again from the start is safe, and the user never sees an error. The one moment
that is not safe is the commit itself: once COMMIT has been sent, a broken
connection says nothing about whether it took effect. Retrying then could apply
a payment twice; giving up silently could lose an order. So a failure after
COMMIT was sent is first settled by asking the server: the transaction's id is
read just before COMMIT (``txid_current_if_assigned()``, one short round trip),
and ``txid_status()`` on a new connection says whether it committed (done: the
result is returned) or aborted (nothing happened: retried). Only when the
server cannot say within the budget is :class:`CommitOutcomeUnknown` raised,
for the application to check (an idempotency key, a lookup) instead of guessing.

What is retried: errors that mean the server side went away or refused before
the work was committed (:data:`~harness.routing.errors.UNAVAILABLE_KINDS`, a
pool timeout), and the two the server asks to retry (serialization failure,
deadlock). A query error (a constraint, a typo) is raised at once: running it
again would fail again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import psycopg

from harness.connections import Conn, connect
from harness.dsn import redact
from harness.routing.errors import UNAVAILABLE_KINDS, ErrorKind, RoutingError, classify
from harness.routing.schemas import set_local_search_path

if TYPE_CHECKING:
    from harness.routing.database import Database

__all__ = ["CommitOutcomeUnknown", "ConnectionLost", "RetryPolicy", "retryable", "run_transaction"]

T = TypeVar("T")

# serialization_failure, deadlock_detected: the server rolled the transaction back
# and says that running it again may succeed.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard :func:`run_transaction` tries; times in seconds.

    The default budget covers a fast restart of the primary (a second or two)
    plus PgBouncer's ``server_login_retry``, without holding a web request for long.
    """

    #: attempts in all, the first included
    attempts: int = 8
    #: no new attempt starts after this long since the first began
    budget: float = 10.0
    #: the wait before the second attempt; it doubles up to ``backoff_max``, half of it random
    backoff_min: float = 0.05
    backoff_max: float = 1.0

    def delay(self, attempt: int, *, jitter: Callable[[], float] = random.random) -> float:
        ceiling = min(self.backoff_max, self.backoff_min * float(2 ** min(attempt, 16)))
        return ceiling * (0.5 + 0.5 * jitter())


DEFAULT_RETRY = RetryPolicy()


class CommitOutcomeUnknown(RoutingError, psycopg.OperationalError):
    """The connection broke after COMMIT was sent: the work may or may not have been committed.

    Never retried: check whether the work is there (by an idempotency key, or by
    reading it back) before doing it again.
    """

    __module__ = "harness.routing"
    kind = ErrorKind.SERVER_REFUSED

    def __init__(self, message: str, *, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(message)


class ConnectionLost(psycopg.OperationalError):
    """The writer's connection broke before COMMIT was sent: nothing was committed."""

    __module__ = "harness.routing"


def retryable(exc: BaseException) -> bool:
    """Whether ``exc``, raised before COMMIT was sent, leaves nothing committed and may pass."""
    if isinstance(exc, CommitOutcomeUnknown):
        return False  # it may have been committed: doing it again could do it twice
    if isinstance(exc, ConnectionLost):
        return True
    if isinstance(exc, psycopg.Error) and exc.sqlstate in _RETRY_SQLSTATES:
        return True
    kind = classify(exc)
    return kind in UNAVAILABLE_KINDS or kind is ErrorKind.POOL_TIMEOUT


def run_transaction(
    db: Database,
    work: Callable[[Conn], T],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    search_path: Sequence[str] = (),
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``work(conn)`` in one transaction on the writer, and commit it; retried when safe.

    ``work`` may run more than once, each time in a new transaction, so it must
    do nothing outside the database that it cannot do twice. Returns what the
    committed run returned. Raises :class:`CommitOutcomeUnknown` when the
    connection broke after COMMIT was sent, and the last error when the policy's
    attempts or budget run out. ``on_retry(attempt, error)`` is told of each retry.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return _once(
                db,
                work,
                search_path=search_path,
                attempts=attempt,
                settle_by=started + max(policy.budget, 5.0),
            )
        except Exception as exc:
            delay = policy.delay(attempt - 1)
            spent = time.monotonic() - started
            if not retryable(exc) or attempt >= policy.attempts or spent + delay > policy.budget:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(delay)


def _once(
    db: Database,
    work: Callable[[Conn], T],
    *,
    search_path: Sequence[str],
    attempts: int,
    settle_by: float,
) -> T:
    pool = db._writer_pool
    conn = db._get(pool, "writer")
    try:
        try:
            if search_path:
                conn.execute(set_local_search_path(search_path))
            result = work(conn)
        except psycopg.Error as exc:
            if conn.broken:
                raise _lost(db, exc) from exc
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            raise
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            raise
        try:
            # NULL when the work wrote nothing: then no commit can be lost either.
            row = conn.execute("SELECT txid_current_if_assigned()::text").fetchone()
        except psycopg.Error as exc:
            if conn.broken:
                raise _lost(db, exc) from exc
            raise
        xid = str(row[0]) if row is not None and row[0] is not None else None
        try:
            conn.commit()
        except psycopg.Error as exc:
            if exc.sqlstate is not None and not exc.sqlstate.startswith(("08", "57")):
                # The server answered the COMMIT with an error (a deferred constraint, a
                # serialization failure): it rolled back, and said so.
                raise
            status = "committed" if xid is None else _settle(db, xid, until=settle_by)
            if status == "committed":
                return result
            if status == "aborted":
                raise ConnectionLost(
                    f"the connection to the writer at {redact(db.writer_url)} broke during "
                    f"COMMIT ({redact(str(exc)).strip()}), and the server says transaction "
                    f"{xid} was rolled back"
                ) from exc
            raise CommitOutcomeUnknown(
                f"the connection to the writer at {redact(db.writer_url)} broke after COMMIT "
                f"was sent (attempt {attempts}): {redact(str(exc)).strip()}; the transaction "
                "may or may not have been committed: check before running it again",
                attempts=attempts,
            ) from exc
        return result
    finally:
        pool.putconn(conn)


def _lost(db: Database, exc: psycopg.Error | None) -> ConnectionLost:
    reason = redact(str(exc)).strip() if exc is not None else "found broken"
    return ConnectionLost(
        f"the connection to the writer at {redact(db.writer_url)} broke before COMMIT was "
        f"sent ({reason}); the server rolled the transaction back"
    )


def _settle(db: Database, xid: str, *, until: float) -> str:
    """``txid_status(xid)`` once the server answers: committed, aborted, or unknown.

    A session that died in COMMIT may show "in progress" for a moment while its
    backend exits; asked again, it settles. Asked on a new connection: the pool's
    may all be broken by the same fault.
    """
    delay = 0.02
    while True:
        try:
            with connect(db.writer_url, timeout=2) as conn:
                row = conn.execute("SELECT txid_status(%s::bigint)", (xid,)).fetchone()
            status = str(row[0]) if row is not None and row[0] is not None else "unknown"
            if status in ("committed", "aborted"):
                return status
        except psycopg.Error:
            pass  # the server is still coming back
        if time.monotonic() + delay > until:
            return "unknown"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
