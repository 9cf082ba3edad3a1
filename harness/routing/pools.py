"""The writer's and reader's client-side pools, sized from the plan's numbers.

The plan gives two sets: ``dbConfig`` (writer min 2 max 10, reader min 5 max
20) and ``DatabasePool`` (writer max 20, reader max 50, idle 30 s / 60 s,
connection timeout 2 s). We take ``dbConfig``'s sizes with ``DatabasePool``'s
timeouts, because these pools sit in front of PgBouncer and every application
process opens its own: PgBouncer's writer takes 100 clients
(``max_client_conn``) for 25+5 server connections, its reader 200 clients for
50+10, and the reader pools in *session* mode, where every client connection,
idle or not, pins one replica connection. At 10 and 20 per process, ten
processes fit under the writer's 100 client slots and three under the
replica's 60 server connections; at 20 and 50, five processes exhaust the
writer's client slots and a single process takes 50 of the replica's 60
connections, mostly to sit idle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from harness.connections import Conn, connect_kwargs
from harness.errors import UsageError

__all__ = ["READER_POOL", "WRITER_POOL", "Pool", "PoolConfig", "make_pool", "urls_from_env"]

Pool = ConnectionPool[Conn]


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """One role's client-side pool; names follow psycopg_pool, times in seconds."""

    application_name: str
    min_size: int
    max_size: int
    #: idle connections above min_size are closed after this long
    max_idle: float
    #: how long a request waits for a free connection (the plan's connectionTimeoutMillis)
    timeout: float = 2.0
    #: how long opening one connection may take
    connect_timeout: float = 2.0
    #: requests allowed to queue for a connection; 0 is unlimited
    max_waiting: int = 0


# An application names its own pools (``dataclasses.replace(WRITER_POOL,
# application_name=...)``) so that pg_stat_activity and PgBouncer's SHOW CLIENTS
# tell its connections apart; these names are the library's fallback.
WRITER_POOL = PoolConfig(
    application_name="pgcutover_writer", min_size=2, max_size=10, max_idle=30.0
)
READER_POOL = PoolConfig(
    application_name="pgcutover_reader", min_size=5, max_size=20, max_idle=60.0
)


def urls_from_env(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``DATABASE_URL`` and ``DATABASE_READONLY_URL``; the reader is optional, as in the plan."""
    writer = environ.get("DATABASE_URL", "").strip()
    if not writer:
        raise UsageError(
            "DATABASE_URL is not set: export the primary's (or its PgBouncer's) connection "
            "string, and DATABASE_READONLY_URL for the replica if there is one"
        )
    return writer, environ.get("DATABASE_READONLY_URL", "").strip() or None


def _read_only(conn: Conn) -> None:
    # A client-side attribute: psycopg then opens transactions with BEGIN READ ONLY,
    # no extra round trip, nothing left on the server for PgBouncer to leak.
    conn.read_only = True


def make_pool(url: str, config: PoolConfig, *, read_only: bool) -> Pool:
    """An open psycopg_pool for one role; it fills ``min_size`` in the background."""
    return ConnectionPool(
        url,
        # prepared statements off: PgBouncer's transaction pooling cannot keep them
        kwargs=connect_kwargs(
            timeout=config.connect_timeout, application_name=config.application_name
        ),
        min_size=config.min_size,
        max_size=config.max_size,
        max_idle=config.max_idle,
        timeout=config.timeout,
        max_waiting=config.max_waiting,
        name=config.application_name,
        configure=_read_only if read_only else None,
        open=True,
    )
