"""A PgBouncer process the local provider runs, configured with the plan's numbers.

Its settings and its ini file come from :mod:`harness.cluster.pooling`, which the
docker provider renders its containers' ini files with too.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path

import psycopg

from harness.cluster.pooling import READER, WRITER, PoolSettings, auth_file_text, render_ini
from harness.cluster.processes import ServerProcess, give_to_server_user, prepare_dir
from harness.cluster.security import Security
from harness.connections import connect
from harness.dsn import make_dsn

__all__ = ["READER", "WRITER", "PgBouncer", "PoolSettings", "render_ini"]


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
        security: Security | None = None,
    ) -> None:
        self.settings = settings
        #: None: trust on plain TCP; else TLS and SCRAM from clients and to the server
        self.security = security
        self.port = listen_port
        self.workdir = prepare_dir(workdir)
        self._users: list[str] = list(dict.fromkeys(users))
        self._write_users()
        self._server = (server_port, dbname)
        ini = self._write_ini(settings)
        # Foreground (no -d): we hold its pid, and its log is ours to read on failure.
        self.process = ServerProcess(
            [executable, str(ini)],
            name=f"PgBouncer ({settings.role})",
            log=self.workdir / "console.log",
            port=listen_port,
            stop_signal=signal.SIGINT,
            discard_signal=signal.SIGTERM,  # PgBouncer's immediate shutdown
        )

    def _write_ini(self, settings: PoolSettings) -> Path:
        ini = self.workdir / "pgbouncer.ini"
        server_port, dbname = self._server
        ini.write_text(
            render_ini(
                settings,
                listen_port=self.port,
                server_port=server_port,
                dbname=dbname,
                auth_file=str(self.workdir / "users.txt"),
                files_in=str(self.workdir),
                tls=None
                if self.security is None
                else (str(self.security.cert_file), str(self.security.key_file)),
            )
        )
        give_to_server_user(ini)
        return ini

    def reconfigure(self, settings: PoolSettings) -> None:
        """Run with other settings: a restart, since a pool_mode change (PgBouncer 1.18)
        reaches only pools created after a RELOAD, and clients of the old ones stay."""
        if settings.role != self.settings.role:
            raise ValueError(
                f"the {self.settings.role} PgBouncer cannot take {settings.role} settings"
            )
        self.settings = settings
        self._write_ini(settings)
        self.restart()

    def _write_users(self) -> None:
        path = self.workdir / "users.txt"
        # The server's SCRAM secret, not the password (harness.cluster.security says why).
        secret = "" if self.security is None else self.security.secret
        path.write_text(auth_file_text(self._users, password=secret))
        give_to_server_user(path)

    @property
    def admin_dsn(self) -> str:
        return self.dsn("pgbouncer")

    def dsn(self, dbname: str, *, user: str = "postgres") -> str:
        login = {} if self.security is None else self.security.client_params()
        return make_dsn(host="127.0.0.1", port=self.port, user=user, dbname=dbname, **login)

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
            discard_signal=signal.SIGTERM,  # PgBouncer's immediate shutdown
        )
        self.wait_ready()

    def stop(self) -> None:
        self.process.stop()
