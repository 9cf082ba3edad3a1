"""The ``docker`` provider: the same primary, replica and two PgBouncers, as containers.

What to start is worked out by :func:`plan_docker_cluster` as plain data, which the
unit tests check without an engine; :func:`start_docker_cluster` starts that plan
through testcontainers and, when any part fails, removes everything it made before
raising. Ryuk (testcontainers' reaper) is the safety net if the process dies first.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

from harness.cluster.base import Cluster, Endpoints
from harness.cluster.pgbouncer import READER, WRITER, PoolSettings, render_ini
from harness.connections import connect
from harness.dsn import make_dsn, with_database
from harness.errors import ClusterStartError, InfrastructureError

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

__all__ = [
    "ContainerFile",
    "ContainerSpec",
    "DockerCluster",
    "DockerPlan",
    "docker_available",
    "pgbouncer_ini",
    "plan_docker_cluster",
    "start_docker_cluster",
]

DEFAULT_IMAGE = "postgres:15"
# edoburu/pgbouncer tags read v<PgBouncer version>-p<image build>. PgBouncer >= 1.18
# lists pool_mode in SHOW POOLS, which the scenarios read.
DEFAULT_PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.24.1-p1"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
SUPERUSER = "postgres"
PG_PORT = 5432
PGBOUNCER_PORT = 6432
PGBOUNCER_DIR = "/etc/pgbouncer"
REPLICATION_SLOT = "pgcutover_replica"
ROLES = ("primary", "replica", "writer", "reader")

# The local provider's settings, minus listen_addresses (the image already listens on
# every interface of the container). A hot standby must have at least the primary's
# max_connections, so both servers get the same list.
SERVER_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_preload_libraries": "pg_stat_statements",
    "track_io_timing": "on",
}

# POSTGRES_HOST_AUTH_METHOD=trust makes the image add "host all all all trust", but the
# keyword "all" never matches the replication pseudo-database, so pg_basebackup and
# the walreceiver need their own line. Init scripts run after the image wrote pg_hba.conf.
_HBA_SCRIPT = b"""#!/bin/sh
echo "host replication all all trust" >> "$PGDATA/pg_hba.conf"
"""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ContainerFile:
    """A file copied in before start: a bind mount would not reach a remote engine."""

    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class ContainerSpec:
    """One container to start; everything docker needs and nothing that needs an engine."""

    role: str
    name: str
    image: str
    network: str
    alias: str
    port: int
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[ContainerFile, ...] = ()
    user: str | None = None


@dataclass(frozen=True)
class DockerPlan:
    """The whole cluster: one network and its containers in the order they must start."""

    network: str
    dbname: str
    containers: tuple[ContainerSpec, ...]

    def spec(self, role: str) -> ContainerSpec:
        return next(c for c in self.containers if c.role == role)


def pgbouncer_ini(settings: PoolSettings, *, server_host: str, dbname: str) -> str:
    """The pgbouncer.ini for one role, with the plan's numbers, as the local provider has it."""
    return render_ini(
        settings,
        listen_addr="0.0.0.0",  # inside the container, behind a mapped port
        listen_port=PGBOUNCER_PORT,
        server_host=server_host,
        server_port=PG_PORT,
        dbname=dbname,
        auth_file=f"{PGBOUNCER_DIR}/userlist.txt",
        admin_user=SUPERUSER,
    )


def _server_args() -> list[str]:
    return [arg for k, v in SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}")]


def _replica_script(*, primary: str) -> str:
    return "\n".join(
        [
            "set -eu",
            # The image creates $PGDATA with mode 1777; pg_basebackup keeps the mode of a
            # directory that exists, and PostgreSQL refuses one that others can write to.
            'mkdir -p "$PGDATA"',
            'chmod 0700 "$PGDATA"',
            # -R writes standby.signal and primary_conninfo; the slot keeps the primary's
            # WAL until the standby has it, so a slow start cannot fall behind for good.
            f'pg_basebackup -h {primary} -p {PG_PORT} -U {SUPERUSER} -D "$PGDATA" '
            f"-R -X stream -c fast -C -S {REPLICATION_SLOT}",
            f"exec {shlex.join(['postgres', *_server_args()])}",
        ]
    )


def plan_docker_cluster(
    *,
    image: str = DEFAULT_IMAGE,
    pgbouncer_image: str = DEFAULT_PGBOUNCER_IMAGE,
    dbname: str = "app",
    token: str | None = None,
) -> DockerPlan:
    """What to start; ``token`` makes names unique so that clusters can run side by side."""
    prefix = f"pgcutover-{token or uuid.uuid4().hex[:8]}"
    primary = ContainerSpec(
        role="primary",
        name=f"{prefix}-primary",
        network=prefix,
        image=image,
        alias="primary",
        port=PG_PORT,
        # The image's entrypoint runs initdb when the first argument is "postgres".
        command=("postgres", *_server_args()),
        env={
            "POSTGRES_USER": SUPERUSER,
            "POSTGRES_DB": dbname,
            "POSTGRES_HOST_AUTH_METHOD": "trust",
        },
        files=(ContainerFile("/docker-entrypoint-initdb.d/10-replication.sh", _HBA_SCRIPT, 0o755),),
    )
    replica = ContainerSpec(
        role="replica",
        name=f"{prefix}-replica",
        network=prefix,
        image=image,
        alias="replica",
        port=PG_PORT,
        command=("sh", "-c", _replica_script(primary=primary.alias)),
        # The image starts as root and drops to postgres with gosu only for "postgres ...";
        # any other command runs as root, and postgres and pg_basebackup refuse root.
        user=SUPERUSER,
    )

    def pooler(settings: PoolSettings, server: ContainerSpec) -> ContainerSpec:
        ini = pgbouncer_ini(settings, server_host=server.alias, dbname=dbname)
        return ContainerSpec(
            role=settings.role,
            name=f"{prefix}-{settings.role}",
            network=prefix,
            image=pgbouncer_image,
            alias=f"pgbouncer-{settings.role}",
            port=PGBOUNCER_PORT,
            command=("pgbouncer", f"{PGBOUNCER_DIR}/pgbouncer.ini"),
            # The image's entrypoint generates its own ini (and insists on DB_HOST) unless
            # one exists already, so ours is in place before the container starts.
            files=(
                ContainerFile(f"{PGBOUNCER_DIR}/pgbouncer.ini", ini.encode()),
                ContainerFile(f"{PGBOUNCER_DIR}/userlist.txt", f'"{SUPERUSER}" ""\n'.encode()),
            ),
        )

    writer, reader = pooler(WRITER, primary), pooler(READER, replica)
    return DockerPlan(network=prefix, dbname=dbname, containers=(primary, replica, writer, reader))


def _docker_host() -> str:
    try:
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    return get_docker_host() or DEFAULT_DOCKER_HOST


def _probe_unix_socket(host: str, *, timeout: float) -> None:
    # docker-py 7 leaves the socket of a failed unix connect open; the ResourceWarning
    # it raises later becomes an error under pytest's "error" filter, so knock first.
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(host.removeprefix("unix://"))


def docker_available(*, timeout: float = 3.0) -> str | None:
    """None when a Docker engine answers; otherwise why not, in words a skip can show."""
    try:
        import docker
    except ImportError as exc:
        return f"the docker package is not installed ({exc}); pip install testcontainers"
    host = _docker_host()
    client = None
    try:
        _probe_unix_socket(host, timeout=timeout)
        # The host testcontainers will use (it also reads ~/.testcontainers.properties
        # and the docker context), not only DOCKER_HOST.
        client = docker.from_env(timeout=timeout, environment={**os.environ, "DOCKER_HOST": host})
        client.ping()
    except Exception as exc:  # any failure means no engine we can use
        return f"no Docker engine answers at {host}: {exc}; start Docker or use --provider local"
    finally:
        if client is not None:
            client.close()
    return None


def _testcontainers() -> tuple[type[DockerContainer], type[Network]]:
    try:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.network import Network
    except ImportError as exc:
        package = (exc.name or "testcontainers").partition(".")[0]
        raise InfrastructureError(
            f"the docker provider needs the {package!r} package, which cannot be imported "
            f"({exc}); pip install testcontainers (it brings the docker SDK), "
            "or use --provider local"
        ) from exc
    return DockerContainer, Network


_STREAMING_SQL = "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'"


def _ask(dsn: str, sql: str) -> bool:
    # Docker's port proxy accepts TCP before the server listens and then hangs up, so
    # only a query that returns proves a server is there.
    with connect(dsn, timeout=2) as conn:
        row = conn.execute(sql).fetchone()
    return bool(row and row[0])


def _await_ready(
    spec: ContainerSpec, container: DockerContainer, dsns: dict[str, str], *, timeout: float
) -> None:
    """Poll real connections until ``spec``'s server answers, failing fast if it exits."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: Exception | None = None
    # A pooler is ready when it reaches its server, which is the replica for the reader.
    in_recovery = spec.role in ("replica", "reader")
    while True:
        try:
            ready = _ask(dsns[spec.role], "SELECT pg_is_in_recovery()") == in_recovery
            if ready and spec.role == "replica":
                ready = _ask(dsns["primary"], _STREAMING_SQL)
            if ready:
                return
        except psycopg.Error as exc:
            last = exc
        container.reload()
        if container.status in ("exited", "dead"):
            raise InfrastructureError(f"it exited ({container.status}) before it was ready")
        if time.monotonic() > deadline:
            found = f"last error: {last}" if last else "it answers but is not in the expected state"
            raise InfrastructureError(f"not ready after {timeout:.1f} sec; {found}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class DockerCluster(Cluster):
    """Containers on one private network; the host reaches them through mapped ports."""

    provider = "docker"

    def __init__(self, plan: DockerPlan) -> None:
        self.plan = plan
        self._network: Network | None = None
        self._containers: list[tuple[ContainerSpec, DockerContainer]] = []
        self._dsns: dict[str, str] = {}
        self._starting: ContainerSpec | None = None

    @property
    def endpoints(self) -> Endpoints:
        if set(self._dsns) != set(ROLES):
            raise InfrastructureError(
                f"the docker cluster {self.plan.network} is not running; "
                "start it with start_docker_cluster()"
            )
        return Endpoints(**{role: self._dsns[role] for role in ROLES})

    @property
    def pgbouncer_admin(self) -> dict[str, str]:
        eps = self.endpoints
        return {role: with_database(getattr(eps, role), "pgbouncer") for role in ROLES[2:]}

    def _start(
        self,
        container_cls: type[DockerContainer],
        network_cls: type[Network],
        *,
        progress: Progress,
        timeout: float,
    ) -> None:
        network = network_cls()
        network.name = self.plan.network
        network.create()
        self._network = network
        for spec in self.plan.containers:
            self._starting = spec
            progress(f"starting the {spec.role} container {spec.name} ({spec.image})")
            container = container_cls(spec.image)
            self._containers.append((spec, container))
            container.with_name(spec.name).with_network(network)
            container.with_network_aliases(spec.alias).with_exposed_ports(spec.port)
            container.with_command(list(spec.command))
            for key, value in spec.env.items():
                container.with_env(key, value)
            for f in spec.files:
                container.with_copy_into_container(f.content, f.path, f.mode)
            if spec.user is not None:
                container.with_kwargs(user=spec.user)
            container.start()
            host = container.get_container_host_ip()
            port = container.get_exposed_port(spec.port)
            self._dsns[spec.role] = make_dsn(
                host=host, port=port, user=SUPERUSER, dbname=self.plan.dbname
            )
            _await_ready(spec, container, self._dsns, timeout=timeout)
        self._starting = None

    def _log_tail(self, *, lines: int = 40) -> str:
        for spec, container in self._containers:
            if spec is self._starting:
                try:
                    logs: bytes = container.get_wrapped_container().logs(tail=lines)
                except Exception:  # no container, or the engine went away: no tail to show
                    return ""
                return logs.decode(errors="replace").rstrip()
        return ""

    def _remove_all(self) -> list[str]:
        problems = []
        while self._containers:
            spec, container = self._containers.pop()
            try:
                container.stop()
            except Exception as exc:  # keep removing the rest
                problems.append(f"container {spec.name}: {exc}")
        self._dsns.clear()
        network, self._network = self._network, None
        if network is not None:
            try:
                network.remove()
            except Exception as exc:
                problems.append(f"network {self.plan.network}: {exc}")
        return problems

    def stop(self) -> None:
        problems = self._remove_all()
        if problems:
            raise InfrastructureError(
                f"could not remove {'; '.join(problems)}; remove what is left of "
                f"{self.plan.network} with docker rm -f and docker network rm"
            )


def start_docker_cluster(
    *,
    image: str = DEFAULT_IMAGE,
    pgbouncer_image: str = DEFAULT_PGBOUNCER_IMAGE,
    dbname: str = "app",
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> DockerCluster:
    """Start the cluster; ``timeout`` bounds each server's start after its image is pulled."""
    container_cls, network_cls = _testcontainers()
    reason = docker_available()
    if reason is not None:
        raise InfrastructureError(reason)
    plan = plan_docker_cluster(image=image, pgbouncer_image=pgbouncer_image, dbname=dbname)
    cluster = DockerCluster(plan)
    try:
        cluster._start(
            container_cls, network_cls, progress=progress or (lambda _: None), timeout=timeout
        )
    except Exception as exc:
        failed = cluster._starting
        tail = cluster._log_tail()
        problems = cluster._remove_all()
        what = f"container {failed.name}" if failed else f"network {plan.network}"
        after = f"could not remove {'; '.join(problems)}" if problems else "removed what it made"
        raise ClusterStartError(
            f"could not start docker {what}: {exc}; {after}", log_tail=tail
        ) from exc
    except BaseException:
        cluster._remove_all()
        raise
    return cluster
