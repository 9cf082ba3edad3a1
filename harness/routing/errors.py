"""One taxonomy for the ways a request can fail, shared by the router, monitoring and load tests.

Pool exhaustion reaches an application in many disguises: psycopg_pool's
``PoolTimeout``, SQLSTATE 53300 from PostgreSQL, PgBouncer's "no more
connections allowed (max_client_conn)" or "query_wait_timeout", a server login
PgBouncer keeps retrying. Counting them under different names hides the one
question that matters during a cutover: *who* said no. :func:`classify` answers
that with one of five :class:`ErrorKind` values, so a dashboard and a Locust
run count the same things.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping

import psycopg
import psycopg_pool

from harness.errors import HarnessError, InfrastructureError, UsageError

__all__ = [
    "ErrorKind",
    "InvalidIdentifier",
    "PoolExhausted",
    "ReplicaUnavailable",
    "RoutingError",
    "WriterUnavailable",
    "classify",
]


class ErrorKind(enum.StrEnum):
    """Who refused a request; the values are stable names for metrics and JSON."""

    #: our own client-side pool had no connection to give within its timeout
    POOL_TIMEOUT = "pool_timeout"
    #: PostgreSQL refused, dropped or could not be reached (53300, 57P0x, refused socket)
    SERVER_REFUSED = "server_refused"
    #: PgBouncer refused (max_client_conn, query_wait_timeout, failing server login)
    POOLER_REFUSED = "pooler_refused"
    #: the replica could not serve a read (down, or a recovery conflict cancelled it)
    REPLICA_UNAVAILABLE = "replica_unavailable"
    #: anything else: the query itself failed (syntax, constraint, privilege, ...)
    QUERY_ERROR = "query_error"


class RoutingError(HarnessError):
    """Root of the router's own errors; each knows its :class:`ErrorKind`."""

    kind: ErrorKind = ErrorKind.QUERY_ERROR


class PoolExhausted(RoutingError, psycopg_pool.PoolTimeout):
    """No connection came free in time; carries the pool's ``get_stats()`` at that moment.

    Also a ``psycopg_pool.PoolTimeout`` (hence an ``OperationalError``), so code
    written against psycopg_pool keeps catching it.
    """

    __module__ = "harness.routing"
    kind = ErrorKind.POOL_TIMEOUT

    def __init__(self, *, role: str, timeout: float, stats: Mapping[str, int]) -> None:
        self.role = role
        self.timeout = timeout
        self.stats = dict(stats)
        in_use = self.stats.get("pool_size", 0) - self.stats.get("pool_available", 0)
        super().__init__(
            f"couldn't get a {role} connection after {timeout:.2f} sec: "
            f"{in_use} of {self.stats.get('pool_max', 0)} connections in use, "
            f"{self.stats.get('requests_waiting', 0)} requests waiting; "
            "raise max_size, shorten transactions, or shed load"
        )


class ReplicaUnavailable(RoutingError, psycopg.OperationalError):
    """A read on the replica failed because the replica (or its pooler) went away.

    ``Database.fetchall`` and friends catch it and retry on the writer; code
    holding a connection from ``Database.reader()`` sees it and may retry itself.
    """

    __module__ = "harness.routing"
    kind = ErrorKind.REPLICA_UNAVAILABLE


class WriterUnavailable(RoutingError, InfrastructureError):
    """The writer could not be reached or is not a primary: nothing can be written."""

    __module__ = "harness.routing"
    kind = ErrorKind.SERVER_REFUSED


class InvalidIdentifier(UsageError, ValueError):
    """A schema or tenant name that is not a plain SQL identifier; it never reaches SQL."""

    __module__ = "harness.routing"


# PgBouncer answers with SQLSTATE 08P01 (protocol violation) for nearly all of its
# own refusals, so the message is the only way to tell them apart (1.18 wording).
_POOLER_MARKERS = (
    "max_client_conn",
    "query_wait_timeout",
    "server login has been failing",
    "server_login_retry",
    "pgbouncer cannot connect to server",
    "client_login_timeout",
    "no such database",
    "server conn crashed",
    "query_timeout",
)
# libpq reports a refused connection (no SQLSTATE reaches psycopg then) in words.
_SERVER_MARKERS = (
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "connection refused",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "timeout expired",
    "could not receive data from server",
    "could not send data to server",
    "no route to host",
)
_SERVER_SQLSTATES = frozenset(
    {
        "53300",  # too_many_connections (max_connections, role or database limit)
        "53400",  # configuration_limit_exceeded
        "57P01",  # admin_shutdown: the server is stopping and ended our session
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or shutting down
        "08000",
        "08001",
        "08003",
        "08004",
        "08006",
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``.orig``, then ``__cause__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _classify_one(exc: BaseException) -> ErrorKind | None:
    if isinstance(exc, RoutingError):
        return exc.kind
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.TooManyRequests):
        return ErrorKind.POOL_TIMEOUT
    if type(exc).__module__.startswith("sqlalchemy") and type(exc).__name__ == "TimeoutError":
        return ErrorKind.POOL_TIMEOUT  # QueuePool limit reached, SQLAlchemy's PoolTimeout
    if not isinstance(exc, psycopg.Error):
        return None
    message = str(exc).lower()
    if any(marker in message for marker in _POOLER_MARKERS):
        return ErrorKind.POOLER_REFUSED
    if exc.sqlstate in _SERVER_SQLSTATES:
        return ErrorKind.SERVER_REFUSED
    # A standby cancels queries whose snapshot replay needs to overwrite (SQLSTATE
    # 40001 with this wording, PostgreSQL >= 9.x): the replica could not serve it.
    if "conflict with recovery" in message:
        return ErrorKind.REPLICA_UNAVAILABLE
    if (
        isinstance(exc, psycopg.OperationalError)
        and exc.sqlstate is None
        and any(marker in message for marker in _SERVER_MARKERS)
    ):
        return ErrorKind.SERVER_REFUSED
    return ErrorKind.QUERY_ERROR


def classify(exc: BaseException) -> ErrorKind:
    """The kind of failure ``exc`` is, looking through wrappers to the first known cause.

    Anything that is neither a database nor a pool error counts as a query error:
    a request failed, and no pool or server said no.
    """
    for link in _chain(exc):
        kind = _classify_one(link)
        if kind is not None:
            return kind
    return ErrorKind.QUERY_ERROR


#: Kinds that mean "the server side went away", as opposed to "the query was wrong".
UNAVAILABLE_KINDS = frozenset(
    {ErrorKind.SERVER_REFUSED, ErrorKind.POOLER_REFUSED, ErrorKind.REPLICA_UNAVAILABLE}
)
