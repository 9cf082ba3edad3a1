"""What the two PgBouncers are configured with, and what the servers behind them must allow.

One PgBouncer process has a single ``max_client_conn``, and a plan may give the
writer and the reader different ones, so a cluster runs two: the writer (on the
primary) and the reader (on the replica). Their numbers come from the plan's
``[pgbouncer]`` section; where it says nothing, from :data:`DEFAULT_POOLERS`, the
numbers the retailer's plan gives (its ``pgBouncerConfig``).

Every provider renders its ini files with :func:`render_ini` and sizes its
servers with :func:`max_connections_for`, so a local process and a container
run with the same settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_POOLERS",
    "DIRECT_CONNECTIONS",
    "POOLS_AT_ONCE",
    "POOL_MODES",
    "READER",
    "WRITER",
    "PoolSettings",
    "Poolers",
    "auth_file_text",
    "max_connections_for",
    "render_ini",
]

POOL_MODES = ("session", "transaction", "statement")


@dataclass(frozen=True)
class PoolSettings:
    """One PgBouncer's settings, named as in ``pgbouncer.ini``; times in seconds."""

    role: str
    pool_mode: str
    max_client_conn: int
    default_pool_size: int
    reserve_pool_size: int
    reserve_pool_timeout: int
    server_lifetime: int
    server_idle_timeout: int
    # PgBouncer retries a refused server login after this many seconds (default 15);
    # short, so that a reader whose replica is down fails fast and the router falls back.
    server_login_retry: int = 1
    # PgBouncer 1.21+ keeps protocol-level prepared statements in transaction pooling,
    # up to this many per server connection; None: not written (the PgBouncer's default).
    max_prepared_statements: int | None = None

    @property
    def pgbouncer_keys(self) -> set[str]:
        """The settings given that not every PgBouncer knows (see harness.cluster.versions)."""
        return {"max_prepared_statements"} if self.max_prepared_statements is not None else set()

    @property
    def server_connections(self) -> int:
        """The most server connections this PgBouncer opens, over all its pools.

        Each (database, user) pair has a pool of its own, of ``default_pool_size``
        plus ``reserve_pool_size`` when clients wait; and no pool mode gives a
        server connection to no client, so ``max_client_conn`` bounds the sum.
        """
        per_pool = self.default_pool_size + self.reserve_pool_size
        return min(self.max_client_conn, POOLS_AT_ONCE * per_pool)


WRITER = PoolSettings("writer", "transaction", 100, 25, 5, 5, 3600, 600)
# The retailer's plan leaves the reader's reserve_pool_timeout out; PgBouncer's default is 5 too.
READER = PoolSettings("reader", "session", 200, 50, 10, 5, 7200, 900)


@dataclass(frozen=True)
class Poolers:
    """The writer's and the reader's settings, as a cluster starts them."""

    writer: PoolSettings = WRITER
    reader: PoolSettings = READER

    @property
    def both(self) -> tuple[PoolSettings, PoolSettings]:
        return (self.writer, self.reader)

    @property
    def max_connections(self) -> int:
        return max_connections_for(self)


DEFAULT_POOLERS = Poolers()

# Pools full at the same time on one PgBouncer: the gate's own superuser sessions and
# the plan's roles, each a (database, user) pair with a pool of its own.
POOLS_AT_ONCE = 4
# Room beside the poolers: direct sessions of the harness, its monitors and the
# application's old sessions the gate keeps open (replication has its own slots,
# max_wal_senders, since PostgreSQL 12).
DIRECT_CONNECTIONS = 100


def max_connections_for(poolers: Poolers) -> int:
    """The servers' ``max_connections``: what the busier PgBouncer may open, plus room.

    The writer reaches only the primary and the reader only the replica, but a hot
    standby refuses to run with a lower ``max_connections`` than its primary's
    (PostgreSQL 15), so both servers get the larger of the two.
    """
    return max(p.server_connections for p in poolers.both) + DIRECT_CONNECTIONS


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def auth_file_text(users: Iterable[str], *, password: str = "") -> str:
    """PgBouncer's ``auth_file`` letting ``users`` in, each with ``password`` (a password
    or the servers' SCRAM secret of it).

    Under auth_type trust the password is never read, but a user missing from the
    file is refused all the same (PgBouncer 1.18: ``"trust" authentication failed``).
    Under scram-sha-256 PgBouncer checks its clients against it and logs in to
    the server with it.
    """
    return "".join(f"{_quoted(u)} {_quoted(password)}\n" for u in dict.fromkeys(users))


def _auth_lines(tls: tuple[str, str] | None) -> str:
    if tls is None:
        return (
            "; trust: the servers trust the harness's network; users must still be in auth_file\n"
            "auth_type = trust\n"
        )
    cert, key = tls
    return (
        "; as a hosted database: TLS and SCRAM-SHA-256 from the clients and to the server\n"
        "auth_type = scram-sha-256\n"
        "client_tls_sslmode = require\n"
        f"client_tls_cert_file = {cert}\n"
        f"client_tls_key_file = {key}\n"
        "server_tls_sslmode = require\n"
    )


def render_ini(
    settings: PoolSettings,
    *,
    listen_addr: str = "127.0.0.1",
    listen_port: int,
    server_host: str = "127.0.0.1",
    server_port: int,
    dbname: str,
    auth_file: str,
    admin_user: str = "postgres",
    files_in: str | None = None,
    tls: tuple[str, str] | None = None,
) -> str:
    """The pgbouncer.ini for one role, for local processes and containers alike.

    Each serves every database of its server through a ``*`` fallback entry, plus an
    alias named after its role (``writer`` / ``reader``) for the cluster's default
    database. ``files_in`` puts the log, pid file and Unix socket in a directory of
    ours; left out (a container), PgBouncer logs to stderr and keeps its image's
    defaults. ``tls`` (certificate and key files) asks every client for TLS and
    SCRAM, and speaks both to the server; None: trust on plain TCP.
    """
    files = (
        f"unix_socket_dir = {files_in}\n"
        f"logfile = {files_in}/pgbouncer.log\n"
        f"pidfile = {files_in}/pgbouncer.pid\n"
        if files_in
        else ""
    )
    return f"""\
[databases]
{settings.role} = host={server_host} port={server_port} dbname={dbname}
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = {listen_addr}
listen_port = {listen_port}
{files}{_auth_lines(tls)}auth_file = {auth_file}
admin_users = {admin_user}
stats_users = {admin_user}
pool_mode = {settings.pool_mode}
max_client_conn = {settings.max_client_conn}
default_pool_size = {settings.default_pool_size}
reserve_pool_size = {settings.reserve_pool_size}
reserve_pool_timeout = {settings.reserve_pool_timeout}
server_lifetime = {settings.server_lifetime}
server_idle_timeout = {settings.server_idle_timeout}
server_login_retry = {settings.server_login_retry}
; psycopg and SQLAlchemy may send these; PgBouncer 1.18 refuses unknown ones
ignore_startup_parameters = extra_float_digits,options
""" + (
        f"max_prepared_statements = {settings.max_prepared_statements}\n"
        if settings.max_prepared_statements is not None
        else ""
    )
