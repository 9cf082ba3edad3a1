"""PgBouncer in front of the cluster, configured with the plan's numbers.

One PgBouncer process has a single ``max_client_conn``, and the plan gives the
writer 100 and the reader 200, so the harness runs two processes: the writer
(transaction pooling, on the primary) and the reader (session pooling, on the
replica). Each serves every database of its server through a ``*`` fallback
entry, plus an alias named after its role (``writer`` / ``reader``) for the
cluster's default database.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from harness.cluster.processes import ServerProcess, give_to_server_user, prepare_dir
from harness.connections import connect

__all__ = ["READER", "WRITER", "PgBouncer", "PoolSettings", "render_ini"]


@dataclass(frozen=True)
class PoolSettings:
    """The plan's ``pgBouncerConfig`` for one role (Step 4 of the plan)."""

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


WRITER = PoolSettings("writer", "transaction", 100, 25, 5, 5, 3600, 600)
# The plan leaves the reader's reserve_pool_timeout out; PgBouncer's default is 5 too.
READER = PoolSettings("reader", "session", 200, 50, 10, 5, 7200, 900)


def _quote_user(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
) -> str:
    """The pgbouncer.ini for one role, for local processes and containers alike.

    ``files_in`` puts the log, pid file and Unix socket in a directory of ours; left
    out (a container), PgBouncer logs to stderr and keeps its image's defaults.
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
{files}; trust: the servers trust the harness's network; users must still be in auth_file
auth_type = trust
auth_file = {auth_file}
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
"""


class PgBouncer:
    """One PgBouncer process we started, with its own directory owned by the server user."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        executable: str,
        workdir: Path,
        listen_port: int,
        server_port: int,
        dbname: str,
        users: Iterable[str] = ("postgres",),
    ) -> None:
        self.settings = settings
        self.port = listen_port
        self.workdir = prepare_dir(workdir)
        self._users: list[str] = list(dict.fromkeys(users))
        self._write_users()
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text(
            render_ini(
                settings,
                listen_port=listen_port,
                server_port=server_port,
                dbname=dbname,
                auth_file=str(self.workdir / "users.txt"),
                files_in=str(self.workdir),
            )
        )
        give_to_server_user(ini)
        # Foreground (no -d): we hold its pid, and its log is ours to read on failure.
        self.process = ServerProcess(
            [executable, str(ini)],
            name=f"PgBouncer ({settings.role})",
            log=self.workdir / "console.log",
            port=listen_port,
            stop_signal=signal.SIGINT,
        )

    def _write_users(self) -> None:
        path = self.workdir / "users.txt"
        path.write_text("".join(f'{_quote_user(u)} ""\n' for u in self._users))
        give_to_server_user(path)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"

    def dsn(self, dbname: str, *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _accepting(self) -> bool:
        try:
            with connect(self.admin_dsn, timeout=2) as conn:
                conn.execute("SHOW VERSION")
        except psycopg.OperationalError:
            return False
        return True

    def wait_ready(self, *, timeout: float = 15.0) -> None:
        self.process.wait_ready(self._accepting, timeout=timeout)

    def allow_users(self, users: Iterable[str]) -> None:
        """Let more roles through (auth_file), and have PgBouncer re-read it."""
        new = [u for u in users if u not in self._users]
        if not new:
            return
        self._users.extend(new)
        self._write_users()
        with connect(self.admin_dsn, timeout=5) as conn:
            conn.execute("RELOAD")

    def restart(self) -> None:
        """Start it again from its own files (same port, users and log), after it died."""
        self.process.stop()
        self.process = ServerProcess(
            self.process.argv,
            name=self.process.name,
            log=self.process.log,
            port=self.port,
            stop_signal=signal.SIGINT,
        )
        self.wait_ready()

    def stop(self) -> None:
        self.process.stop()
