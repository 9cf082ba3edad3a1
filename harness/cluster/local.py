"""A primary, a streaming replica and two PgBouncers from this machine's binaries.

Everything lives in one temporary directory and on free loopback ports, so
several clusters (and the developer's own PostgreSQL) can run side by side.
Each server's settings, its port included, live in its data directory
(``pgcutover.conf``, included from ``postgresql.conf``), so an operator's plain
``pg_ctl start``, ``stop`` or ``restart`` brings it back exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from harness import phases
from harness.cluster.base import Cluster, Endpoints
from harness.cluster.binaries import PgBinaries, find_binaries, find_pgbouncer
from harness.cluster.pgbouncer import PgBouncer
from harness.cluster.pooling import DEFAULT_POOLERS, Poolers
from harness.cluster.processes import (
    ServerProcess,
    another_free_port,
    free_port,
    give_to_server_user,
    live_postmaster,
    prepare_dir,
    run_as_owner,
    stop_processes_under,
)
from harness.cluster.security import CERT_NAME, KEY_NAME, Security, make_security
from harness.connections import connect
from harness.databases import create_database
from harness.dsn import child_env, make_dsn
from harness.errors import ClusterStartError, UsageError
from harness.progress import Progress, quiet

if TYPE_CHECKING:
    from harness.cluster.clone import CloneSource

__all__ = ["LocalCluster", "start_local_cluster"]

# Settings for a disposable test cluster. fsync and full_page_writes off trade crash
# safety (irrelevant for a throwaway cluster) for speed. max_connections is not here:
# it follows the poolers' settings (harness.cluster.pooling.max_connections_for).
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "wal_keep_size": "256MB",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "shared_buffers": "128MB",
    "fsync": "off",
    "full_page_writes": "off",
    "checkpoint_timeout": "30min",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "track_io_timing": "on",
}


SETTINGS_FILE = "pgcutover.conf"


def _quote(value: str) -> str:
    # postgresql.conf quoting: single quotes, a quote inside doubled.
    return "'" + value.replace("'", "''") + "'"


def write_settings(
    bins: PgBinaries,
    datadir: Path,
    *,
    port: int,
    socket_dir: Path,
    max_connections: int,
    ssl: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> Path:
    """Put the server's settings in its data directory; a plain ``postgres -D`` then has them.

    A replica cloned by pg_basebackup gets the primary's file and include line;
    writing the file again gives it its own port. ``ssl``: serve TLS with the
    certificate :meth:`Security.install` put in the data directory.
    """
    settings = dict(SERVER_SETTINGS)
    if ssl:
        settings.update(ssl="on", ssl_cert_file=CERT_NAME, ssl_key_file=KEY_NAME)
    settings["port"] = str(port)
    settings["unix_socket_directories"] = str(socket_dir)
    settings["max_connections"] = str(max_connections)
    settings.update(overrides or {})
    # Slow-query monitoring uses pg_stat_statements where the server has it (Debian's
    # postgresql-15 does, next to its bin/); a server without it still starts.
    if (bins.bindir.parent / "lib" / "pg_stat_statements.so").exists():
        settings["shared_preload_libraries"] = "pg_stat_statements"
    path = datadir / SETTINGS_FILE
    path.write_text(
        "# written by pgcutover: this server's settings, kept across pg_ctl restarts\n"
        + "".join(f"{key} = {_quote(value)}\n" for key, value in settings.items())
    )
    give_to_server_user(path)
    main_conf = datadir / "postgresql.conf"
    include = f"include '{SETTINGS_FILE}'\n"
    text = main_conf.read_text()
    if include not in text:
        main_conf.write_text(text + "\n" + include)
    return path


def _accepts(dsn: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with connect(dsn, timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    return probe


def _streaming(dsn: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with connect(dsn, timeout=2) as conn:
                row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and row[0] == "streaming"

    return probe


INITDB_OPTIONS = (
    "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
    # 1 MB WAL segments instead of 16: less to copy, to clone and to keep.
    "--wal-segsize=1",
)  # fmt: skip


def default_base_dir() -> str:
    """Where clusters live: ``PGCUTOVER_TMPDIR``, else a roomy tmpfs, else the temp dir.

    A throwaway cluster runs with fsync off, so memory-backed storage loses nothing
    and makes initdb, base backups and template copies several times faster. A
    tmpfs with less than 2 GiB free (Docker gives 64 MB) is passed over.
    """
    chosen = os.environ.get("PGCUTOVER_TMPDIR")
    if chosen:
        return chosen
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
        if os.access(shm, os.W_OK) and stat.f_bavail * stat.f_frsize >= 2 << 30:
            return shm
    except OSError:
        pass
    return tempfile.gettempdir()


def _initdb(bins: PgBinaries, datadir: Path, *, progress: Progress) -> None:
    """A fresh data directory: a copy of a cached initdb when there is one.

    initdb's output depends only on the binaries and its options, and copying
    it takes a fraction of the second or more that initdb needs; the cache sits
    in the system's temporary directory, keyed by version and options.
    """
    key = hashlib.sha256(
        "\0".join((bins.version(), str(bins.bindir), *INITDB_OPTIONS)).encode()
    ).hexdigest()[:16]
    cache = Path(default_base_dir()) / f"pgcutover-initdb-{os.geteuid()}" / key
    if (cache / "PG_VERSION").is_file():
        progress("copying a cached initdb into the primary's data directory")
        run_as_owner(["cp", "-a", str(cache), str(datadir)], what="copying the initdb cache")
        return
    progress("initdb: creating the primary's data directory")
    run_as_owner(
        [
            bins.path("initdb"),
            "-D",
            str(datadir),
            *INITDB_OPTIONS,
            "--no-sync",
            "--no-instructions",
        ],
        what="initdb",
    )
    staging = prepare_dir(cache.parent) / f".{key}.{os.getpid()}"
    try:
        run_as_owner(["cp", "-a", str(datadir), str(staging)], what="caching initdb")
        staging.rename(cache)  # atomic: another process either sees all of it or none
    except (OSError, ClusterStartError):
        shutil.rmtree(staging, ignore_errors=True)  # a cache is an optimisation only


class LocalCluster(Cluster):
    """Owns a temporary directory and the four processes it started there."""

    provider = "local"

    def __init__(
        self,
        *,
        bins: PgBinaries,
        workdir: Path,
        dbname: str,
        poolers: Poolers = DEFAULT_POOLERS,
        max_connections: int | None = None,
        clone: CloneSource | None = None,
        security: Security | None = None,
    ) -> None:
        self.bins = bins
        #: None: trust on plain TCP; else every TCP client needs TLS and SCRAM
        self.security = security
        #: the server the primary is a copy of (None: a fresh initdb and database)
        self.clone = clone
        self.poolers = poolers
        #: None: sized for the poolers; the replica gets the same (a hot standby needs >=)
        self.max_connections = (
            poolers.max_connections if max_connections is None else max_connections
        )
        self.workdir = workdir
        self.dbname = dbname
        self.primary: ServerProcess | None = None
        self.replica: ServerProcess | None = None
        self.bouncers: dict[str, PgBouncer] = {}
        self._endpoints: Endpoints | None = None
        self._down: set[str] = set()
        # A safety net: if the owner forgets stop(), the interpreter's exit still runs it.
        self._finalizer = weakref.finalize(self, LocalCluster._teardown, self._processes, workdir)

    # -- lifecycle -----------------------------------------------------------------
    def _processes(self) -> list[ServerProcess]:
        procs = [b.process for b in self.bouncers.values()]
        return procs + [p for p in (self.replica, self.primary) if p is not None]

    @staticmethod
    def _teardown(processes: Callable[[], list[ServerProcess]], workdir: Path) -> None:
        ServerProcess.discard_all(processes())
        # A server restarted by an operator (pg_ctl restart) has a pid we never held;
        # removing its directory under it would leave it running on the port.
        stop_processes_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)

    def stop(self) -> None:
        self._finalizer()

    def _server(
        self, role: str, *, port: int, overrides: Mapping[str, str] | None = None
    ) -> ServerProcess:
        """Start a server of the cluster from its data directory (same name as role)."""
        datadir = self.workdir / role
        write_settings(
            self.bins,
            datadir,
            port=port,
            socket_dir=self.workdir / "sockets",
            max_connections=self.max_connections,
            ssl=self.security is not None,
            overrides=overrides,
        )
        return ServerProcess(
            [self.bins.path("postgres"), "-D", str(datadir)],
            name=f"PostgreSQL {role}",
            log=self.workdir / f"{role}.log",
            port=port,
        )

    def start(self, *, progress: Progress = quiet) -> None:
        prepare_dir(self.workdir / "sockets")
        primary_dir = self.workdir / "primary"
        replica_dir = self.workdir / "replica"
        if self.clone is not None:
            primary_port = self.clone.start_primary(self, progress=progress)
        else:
            _initdb(self.bins, primary_dir, progress=progress)
            if self.security is not None:
                self.security.install(primary_dir)
            primary_port = free_port()
            progress(f"starting the primary ({self.bins.version()}) on 127.0.0.1:{primary_port}")
            self.primary = self._server("primary", port=primary_port)
            # On the Unix socket, trusted either way: the password is not set yet.
            admin = make_conninfo(
                "", host=str(self.workdir / "sockets"), port=primary_port, user="postgres"
            )
            self.primary.wait_ready(_accepts(admin))
            if self.security is not None:
                with connect(admin) as conn:
                    conn.execute(
                        sql.SQL("ALTER ROLE postgres PASSWORD {}").format(
                            sql.Literal(self.security.secret)  # the one PgBouncer holds
                        )
                    )
            if self.dbname != "postgres":
                create_database(admin, self.dbname)

        progress("pg_basebackup: cloning the replica from the primary")
        login = {} if self.security is None else self.security.client_params()
        # -R writes the password and sslmode given here into the replica's primary_conninfo.
        source, env = child_env(make_conninfo("", **login))
        run_as_owner(
            [
                self.bins.path("pg_basebackup"),
                "-h", "127.0.0.1",
                "-p", str(primary_port),
                "-U", "postgres",
                *(["-d", source] if login else []),
                "-D", str(replica_dir),
                "-R", "-X", "stream", "-c", "fast", "--no-sync",
            ],
            what="pg_basebackup",
            env=env,
            timeout=120.0 if self.clone is None else None,  # a clone is as large as its source
        )  # fmt: skip
        replica_port = free_port()
        progress(f"starting the replica on 127.0.0.1:{replica_port}")
        self.replica = self._server("replica", port=replica_port)

        pgbouncer = find_pgbouncer()
        taken = {primary_port, replica_port}
        for settings, server_port in (
            (self.poolers.writer, primary_port),
            (self.poolers.reader, replica_port),
        ):
            self.bouncers[settings.role] = PgBouncer(
                settings,
                executable=pgbouncer,
                workdir=self.workdir / f"pgbouncer-{settings.role}",
                listen_port=another_free_port(taken),
                server_port=server_port,
                dbname=self.dbname,
                security=self.security,
            )
        replica_admin = make_dsn(
            host="127.0.0.1", port=replica_port, user="postgres", dbname="postgres", **login
        )
        self.replica.wait_ready(_streaming(replica_admin))
        for bouncer in self.bouncers.values():
            bouncer.wait_ready()
        phases.note()  # the time so far is the cluster's, not the first check's
        progress("cluster ready: replica streaming, PgBouncer accepting")

        def direct(port: int) -> str:
            return make_dsn(
                host="127.0.0.1", port=port, user="postgres", dbname=self.dbname, **login
            )

        self._endpoints = Endpoints(
            primary=direct(primary_port),
            replica=direct(replica_port),
            writer=self.bouncers["writer"].dsn(self.dbname),
            reader=self.bouncers["reader"].dsn(self.dbname),
        )

    @contextmanager
    def scratch_server(self) -> Iterator[str]:
        """A third server from the same binaries and initdb, reached on its Unix socket,
        stopped and removed on the way out.

        The backup's proof restores a whole database: on the primary that went into the
        WAL the replica replays and the change ledger's slot reads (780 MB at scale
        100). Here nothing is replicated, so nothing is logged but what a crash needs.
        """
        name = "scratch"
        _initdb(self.bins, self.workdir / name, progress=quiet)
        if self.security is not None:  # its settings ask for TLS as the primary's do
            self.security.install(self.workdir / name)
        port = free_port()
        minimal = {"wal_level": "minimal", "max_wal_senders": "0", "hot_standby": "off"}
        server = self._server(name, port=port, overrides=minimal)
        try:
            admin = make_conninfo(
                "", host=str(self.workdir / "sockets"), port=port, user="postgres"
            )
            server.wait_ready(_accepts(admin))
            yield admin
        finally:
            ServerProcess.discard_all([server])
            shutil.rmtree(self.workdir / name, ignore_errors=True)

    # -- Cluster interface ---------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("cluster not started")
        return self._endpoints

    @property
    def pgbouncer_admin(self) -> dict[str, str]:
        return {role: b.admin_dsn for role, b in self.bouncers.items()}

    def allow_users(self, roles: Iterable[str]) -> None:
        """Add the roles to both PgBouncers' auth files, and have each re-read its own."""
        names = list(roles)
        for bouncer in self.bouncers.values():
            bouncer.allow_users(names)

    def watch(self) -> list[str]:
        """Report a server that went down or came back; restart a PgBouncer that died.

        PostgreSQL is not restarted behind an operator's back (it may be stopped on
        purpose); a server restarted with ``pg_ctl`` counts as up. PgBouncer holds no
        data, and the application reaches everything through it: it comes back at once.
        """
        messages: list[str] = []
        for role, proc in (("primary", self.primary), ("replica", self.replica)):
            if proc is None:
                continue
            up = proc.running() or live_postmaster(self.workdir / role) is not None
            if not up and role not in self._down:
                self._down.add(role)
                messages.append(
                    f"{proc.name} on 127.0.0.1:{proc.port} is down; start it again with "
                    f"pg_ctl -D {self.workdir / role} -l {proc.log} start (as the server's "
                    "OS user): it keeps its port and settings"
                )
            elif up and role in self._down:
                self._down.discard(role)
                messages.append(f"{proc.name} on 127.0.0.1:{proc.port} is running again")
        for bouncer in self.bouncers.values():
            proc = bouncer.process
            if proc.running():
                continue
            code = proc.returncode
            started = time.perf_counter()
            try:
                bouncer.restart()
            except ClusterStartError as exc:
                messages.append(
                    f"{proc.name} on 127.0.0.1:{proc.port} died and could not be restarted: {exc}"
                )
                continue
            messages.append(
                f"{proc.name} on 127.0.0.1:{proc.port} died (exit code {code}); restarted it "
                f"in {time.perf_counter() - started:.2f} sec"
            )
        return messages

    def restart_replica(self) -> None:
        """Start the replica again after a fault scenario stopped it."""
        assert self.replica is not None
        self.replica.stop()
        self.replica = self._server("replica", port=self.replica.port)
        self.replica.wait_ready(_accepts(self.endpoints.replica))


def start_local_cluster(
    *,
    pg_bin: str | None = None,
    dbname: str = "app",
    progress: Progress = quiet,
    base_dir: str | None = None,
    poolers: Poolers | None = None,
    max_connections: int | None = None,
    clone: CloneSource | None = None,
    tls: bool = False,
) -> LocalCluster:
    """Start a local cluster; on any failure, stop what was started and re-raise.

    ``poolers`` are the PgBouncers' settings (a plan's ``[pgbouncer]``; None: the
    defaults); ``max_connections`` overrides what the servers' would be sized for them.
    ``clone``: start the primary from a copy of that server (``dbname`` is then one of
    its databases) instead of initdb. An interrupted copy goes with the directory.
    ``tls``: every TCP client, PgBouncer included, needs TLS and SCRAM-SHA-256, as a
    hosted database demands (a fresh cluster only).
    """
    if tls and clone is not None:
        raise UsageError(
            "TLS is for a fresh cluster: a clone keeps its source's own authentication; "
            "drop the clone or [network] tls"
        )
    bins = find_binaries(pg_bin)
    find_pgbouncer()  # fail before creating anything when PgBouncer is missing
    workdir = prepare_dir(
        Path(tempfile.mkdtemp(prefix="pgcutover-", dir=base_dir or default_base_dir()))
    )
    cluster = LocalCluster(
        bins=bins,
        workdir=workdir,
        dbname=dbname,
        poolers=poolers or DEFAULT_POOLERS,
        max_connections=max_connections,
        clone=clone,
    )
    try:
        if tls:
            cluster.security = make_security(workdir / "tls")
        cluster.start(progress=progress)
    except BaseException:
        cluster.stop()
        raise
    return cluster
