"""What the docker provider starts, as plain data: containers, ports and the scripts they run.

Nothing here needs an engine, so the unit tests read the plan as it is. Every node
runs an explicit shell script as the postgres user (initdb, pg_basebackup, or
pgbouncer with an ini rendered from the plan's pool settings by the renderer the
local provider uses), never an image's
entrypoint: the image ``harness image build`` makes runs them, and so does an
official ``postgres`` image for the servers.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from harness.cluster.docker_image import DEFAULT_IMAGE
from harness.cluster.local import INITDB_OPTIONS
from harness.cluster.local import SERVER_SETTINGS as LOCAL_SETTINGS
from harness.cluster.pooling import DEFAULT_POOLERS, Poolers, PoolSettings, render_ini
from harness.cluster.processes import another_free_port
from harness.errors import UsageError

__all__ = [
    "NETWORKS",
    "ROLES",
    "SUPERUSER",
    "ContainerSpec",
    "DockerPlan",
    "pgbouncer_ini",
    "plan_docker_cluster",
]

NETWORKS = ("host", "bridge")
SUPERUSER = "postgres"
PG_PORT = 5432
PGBOUNCER_PORT = 6432
# On the container's own layer: it goes with the container, so no volume is left behind.
# The postgres user's home in Debian's packages and in the official images alike (a
# tmpfs would be faster, but Docker 20.10 mounts it root-owned whatever mode is asked).
PGDATA = "/var/lib/postgresql/pgcutover"
PGBOUNCER_DIR = "/tmp/pgbouncer"
ROLES = ("primary", "replica", "writer", "reader")


@dataclass(frozen=True)
class ContainerSpec:
    """One container to start; everything docker needs and nothing that needs an engine.

    ``port`` is where the service listens inside the container; ``host_port`` is where
    the host reaches it (the same port with host networking; with a bridge, the
    published port, or None for one the engine picks).
    """

    role: str
    name: str
    image: str
    alias: str
    port: int
    host_port: int | None
    script: str


@dataclass(frozen=True)
class DockerPlan:
    """The whole cluster: its token (the label value), network and containers in start order."""

    token: str
    network: str
    dbname: str
    containers: tuple[ContainerSpec, ...]

    @property
    def network_name(self) -> str | None:
        """The private network a bridge cluster makes; None with host networking."""
        return f"pgcutover-{self.token}" if self.network == "bridge" else None

    def spec(self, role: str) -> ContainerSpec:
        return next(c for c in self.containers if c.role == role)


# -- the scripts each container runs --------------------------------------------------
def _server_prelude(*, port: int, listen: str, max_connections: int) -> list[str]:
    settings = {
        **LOCAL_SETTINGS,
        "listen_addresses": listen,
        "port": str(port),
        "max_connections": str(max_connections),
        # Each container has its own /tmp; the image's socket directory may not exist.
        "unix_socket_directories": "/tmp",
    }
    args = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
    return [
        "set -eu",
        # Debian's packages keep the server binaries off PATH; official images put them on.
        'for bindir in /usr/lib/postgresql/*/bin; do PATH="$bindir:$PATH"; done',
        f"PGDATA={PGDATA}",
        f"set -- {shlex.join(args)}",
        # As the local provider: pg_stat_statements where the server has it.
        'lib="$(dirname "$(command -v postgres)")/../lib"',
        'if [ -f "$lib/pg_stat_statements.so" ]; then '
        'set -- "$@" -c shared_preload_libraries=pg_stat_statements; fi',
    ]


def _primary_script(*, port: int, listen: str, open_hba: bool, max_connections: int) -> str:
    lines = _server_prelude(port=port, listen=listen, max_connections=max_connections)
    initdb = shlex.join(["initdb", *INITDB_OPTIONS, "--no-sync", "--no-instructions"])
    # A restarted container keeps its layer, and its data directory.
    lines.append(f'if [ ! -s "$PGDATA/PG_VERSION" ]; then {initdb} -D "$PGDATA" >/dev/null')
    if open_hba:
        # initdb's trust lines cover loopback only; on a private bridge network the
        # replica and the poolers come from other addresses, replication included
        # (the keyword "all" never matches the replication pseudo-database).
        lines.append(
            "printf 'host all all all trust\\nhost replication all all trust\\n' "
            '>> "$PGDATA/pg_hba.conf"'
        )
    lines.append("fi")
    lines.append('exec postgres -D "$PGDATA" "$@"')
    return "\n".join(lines)


def _replica_script(
    *, port: int, listen: str, primary_host: str, primary_port: int, max_connections: int
) -> str:
    lines = _server_prelude(port=port, listen=listen, max_connections=max_connections)
    clone = shlex.join(
        [
            "pg_basebackup",
            *("-h", primary_host, "-p", str(primary_port), "-U", SUPERUSER),
            *("-R", "-X", "stream", "-c", "fast", "--no-sync"),
        ]
    )
    # A restarted replica keeps its data directory and catches up by streaming.
    lines.append(f'if [ ! -s "$PGDATA/PG_VERSION" ]; then {clone} -D "$PGDATA"; fi')
    lines.append('exec postgres -D "$PGDATA" "$@"')
    return "\n".join(lines)


def pgbouncer_ini(
    settings: PoolSettings,
    *,
    listen_addr: str,
    port: int,
    server: str,
    server_port: int,
    dbname: str,
) -> str:
    return render_ini(
        settings,
        listen_addr=listen_addr,
        listen_port=port,
        server_host=server,
        server_port=server_port,
        dbname=dbname,
        auth_file=f"{PGBOUNCER_DIR}/userlist.txt",
        admin_user=SUPERUSER,
    )


def _pgbouncer_script(ini: str) -> str:
    return "\n".join(
        [
            "set -eu",
            f"mkdir -p {PGBOUNCER_DIR}",
            f"cat > {PGBOUNCER_DIR}/pgbouncer.ini <<'PGCUTOVER_INI'",
            ini.rstrip("\n"),
            "PGCUTOVER_INI",
            f'printf \'"{SUPERUSER}" ""\\n\' > {PGBOUNCER_DIR}/userlist.txt',
            f"exec pgbouncer {PGBOUNCER_DIR}/pgbouncer.ini",
        ]
    )


def plan_docker_cluster(
    *,
    image: str = DEFAULT_IMAGE,
    pgbouncer_image: str | None = None,
    dbname: str = "app",
    network: str = "host",
    token: str | None = None,
    ports: Mapping[str, int] | None = None,
    poolers: Poolers = DEFAULT_POOLERS,
) -> DockerPlan:
    """What to start; ``token`` makes names unique, ``ports`` fixes host ports by role.

    ``poolers`` configures the two PgBouncers and, through them, the servers'
    ``max_connections``, as the local provider does.
    """
    if network not in NETWORKS:
        raise UsageError(f"unknown docker network {network!r}; choose one of {', '.join(NETWORKS)}")
    unknown = set(ports or {}) - set(ROLES)
    if unknown:
        raise UsageError(f"ports given for unknown roles {sorted(unknown)}; roles are {ROLES}")
    token = token or uuid.uuid4().hex[:10]
    prefix = f"pgcutover-{token}"
    host = network == "host"
    chosen = dict(ports or {})
    taken = set(chosen.values())

    def host_port(role: str) -> int | None:
        # Every port is chosen before any container binds one: no role gets another's.
        if host and role not in chosen:
            chosen[role] = another_free_port(taken)
        return chosen.get(role)

    listen = "127.0.0.1" if host else "*"
    primary_port = host_port("primary") if host else PG_PORT
    replica_port = host_port("replica") if host else PG_PORT
    assert primary_port is not None
    assert replica_port is not None
    primary = ContainerSpec(
        role="primary",
        name=f"{prefix}-primary",
        image=image,
        alias="primary",
        port=primary_port,
        host_port=primary_port if host else host_port("primary"),
        script=_primary_script(
            port=primary_port,
            listen=listen,
            open_hba=not host,
            max_connections=poolers.max_connections,
        ),
    )
    replica = ContainerSpec(
        role="replica",
        name=f"{prefix}-replica",
        image=image,
        alias="replica",
        port=replica_port,
        host_port=replica_port if host else host_port("replica"),
        script=_replica_script(
            port=replica_port,
            listen=listen,
            primary_host="127.0.0.1" if host else primary.alias,
            primary_port=primary_port,
            max_connections=poolers.max_connections,
        ),
    )

    def pooler(settings: PoolSettings, server: ContainerSpec) -> ContainerSpec:
        port = host_port(settings.role) if host else PGBOUNCER_PORT
        assert port is not None
        ini = pgbouncer_ini(
            settings,
            listen_addr="127.0.0.1" if host else "0.0.0.0",
            port=port,
            server="127.0.0.1" if host else server.alias,
            server_port=server.port,
            dbname=dbname,
        )
        return ContainerSpec(
            role=settings.role,
            name=f"{prefix}-{settings.role}",
            image=pgbouncer_image or image,
            alias=f"pgbouncer-{settings.role}",
            port=port,
            host_port=port if host else host_port(settings.role),
            script=_pgbouncer_script(ini),
        )

    containers = (
        primary,
        replica,
        pooler(poolers.writer, primary),
        pooler(poolers.reader, replica),
    )
    return DockerPlan(token=token, network=network, dbname=dbname, containers=containers)
