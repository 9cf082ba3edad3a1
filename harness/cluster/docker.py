"""The ``docker`` provider: the same primary, replica and two PgBouncers, as containers.

:func:`start_docker_cluster` starts what :func:`~harness.cluster.docker_plan.plan_docker_cluster`
worked out, through testcontainers, in the image ``harness image build`` makes.

Networking stays on this machine: by default every container shares the host's
network and listens on its own port of 127.0.0.1, so no traffic goes through the
bridge's private addresses or NAT. ``network="bridge"`` puts the containers on a
private network of their own instead, with ports published on 127.0.0.1 only, for
CI runners that forbid host networking.

Whatever is made carries the cluster's labels (see :mod:`harness.cluster.docker_engine`);
stopping, failing, Ctrl-C and the next start all remove by label.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg

from harness.cluster.base import Cluster, Endpoints
from harness.cluster.client_tools import clients_for
from harness.cluster.docker_engine import (
    cluster_labels,
    docker_available,
    open_engine,
    remove_cluster,
    remove_stale,
    use_ryuk,
)
from harness.cluster.docker_image import DEFAULT_IMAGE, ensure_image
from harness.cluster.docker_plan import (
    NETWORKS,
    PGBOUNCER_DIR,
    ROLES,
    SUPERUSER,
    ContainerSpec,
    DockerPlan,
    plan_docker_cluster,
)
from harness.cluster.pooling import DEFAULT_POOLERS, Poolers, auth_file_text
from harness.connections import connect
from harness.databases import create_database
from harness.dsn import make_dsn, with_database
from harness.errors import ClusterStartError, HarnessError, InfrastructureError
from harness.progress import Progress, quiet

if TYPE_CHECKING:
    import docker
    from testcontainers.core.container import DockerContainer

__all__ = [
    "DEFAULT_IMAGE",
    "NETWORKS",
    "ContainerSpec",
    "DockerCluster",
    "DockerPlan",
    "docker_available",
    "plan_docker_cluster",
    "start_docker_cluster",
]

ENV_IMAGE = "PGCUTOVER_DOCKER_IMAGE"
ENV_NETWORK = "PGCUTOVER_DOCKER_NETWORK"


# -- readiness ------------------------------------------------------------------------
_PORT_TAKEN = ("address already in use", "port is already allocated", "could not bind")
_STREAMING_SQL = "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'"


def _ask(dsn: str, sql: str) -> bool:
    # Docker's port proxy (bridge) accepts TCP before the server listens and then hangs
    # up, so only a query that returns proves a server is there.
    with connect(dsn, timeout=2) as conn:
        row = conn.execute(sql).fetchone()
    return bool(row and row[0])


def _container_state(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.status)


def _await_ready(
    role: str,
    container: docker.models.containers.Container,
    dsns: Mapping[str, str],
    *,
    timeout: float,
) -> None:
    """Poll real connections until ``role``'s server answers, failing fast if it exits."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: Exception | None = None
    # A pooler is ready when it reaches its server, which is the replica for the reader.
    in_recovery = role in ("replica", "reader")
    while True:
        try:
            ready = _ask(dsns[role], "SELECT pg_is_in_recovery()") == in_recovery
            if ready and role == "replica":
                ready = _ask(dsns["primary"], _STREAMING_SQL)
            if ready:
                return
        except psycopg.Error as exc:
            last = exc
        state = _container_state(container)
        if state in ("exited", "dead"):
            raise InfrastructureError(f"it exited ({state}) before it was ready")
        # PgBouncer 1.18 that cannot bind its TCP port warns and carries on with its Unix
        # socket alone, and whoever holds the port may accept and never answer: read
        # the log rather than wait out the timeout.
        said = container.logs(tail=50).decode(errors="replace")
        if any(marker in said.lower() for marker in _PORT_TAKEN):
            raise InfrastructureError(f"its log says: {said.strip().splitlines()[-1]}")
        if time.monotonic() > deadline:
            found = f"last error: {last}" if last else "it answers but is not in the expected state"
            raise InfrastructureError(f"not ready after {timeout:.1f} sec; {found}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _diagnose(spec: ContainerSpec, error: BaseException, log_tail: str) -> str:
    said = f"{error}\n{log_tail}".lower()
    if any(marker in said for marker in _PORT_TAKEN):
        return (
            f"port {spec.host_port} on 127.0.0.1 is taken by another process; stop that "
            "process, or leave the ports out and let the provider choose free ones"
        )
    return str(error)


class Node:
    """One node's container, stopped and inspected the way a local server process is."""

    def __init__(self, container: docker.models.containers.Container) -> None:
        self._container = container

    def stop(self) -> None:
        """Stop the container: with its SIGINT, PostgreSQL's fast shutdown."""
        self._container.stop(timeout=30)

    def running(self) -> bool:
        return _container_state(self._container) == "running"


class DockerCluster(Cluster):
    """The containers of one plan; the host reaches each on its own port of 127.0.0.1."""

    provider = "docker"

    def __init__(self, plan: DockerPlan, *, client: docker.DockerClient) -> None:
        self.plan = plan
        self._client = client
        self._containers: dict[str, DockerContainer] = {}
        self._dsns: dict[str, str] = {}
        self._starting: ContainerSpec | None = None
        self._allowed: set[str] = set()  # roles already in the auth files
        self._undo_clients: Callable[[], None] = lambda: None
        # A safety net: if the owner forgets stop(), the interpreter's exit still runs it.
        self._interrupted: list[bool] = [False]
        self._finalizer = weakref.finalize(
            self, _remove_and_close, client, plan.token, self._interrupted
        )

    @property
    def endpoints(self) -> Endpoints:
        if set(self._dsns) != set(ROLES):
            raise InfrastructureError(
                f"the docker cluster {self.plan.token} is not running; "
                "start it with start_docker_cluster()"
            )
        return Endpoints(**{role: self._dsns[role] for role in ROLES})

    @property
    def pgbouncer_admin(self) -> dict[str, str]:
        eps = self.endpoints
        return {role: with_database(getattr(eps, role), "pgbouncer") for role in ROLES[2:]}

    def container(self, role: str) -> docker.models.containers.Container:
        """The engine's view of one node, for scenarios that stop or inspect it."""
        return self._containers[role].get_wrapped_container()

    # -- starting ----------------------------------------------------------------------
    def _create(self, spec: ContainerSpec, labels: dict[str, str]) -> DockerContainer:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(spec.image)
        container.with_name(spec.name).with_command(["-c", spec.script])
        options: dict[str, Any] = {
            "entrypoint": ["/bin/sh"],
            "user": SUPERUSER,
            "labels": labels,
            # Docker's 64 MB /dev/shm is too small for parallel queries' shared memory.
            "shm_size": "256m",
            # SIGINT: PostgreSQL's fast shutdown and PgBouncer's safe one; the default
            # SIGTERM makes PostgreSQL wait for every session, a pooler's included.
            "stop_signal": "SIGINT",
        }
        if self.plan.network == "host":
            options["network"] = "host"
        else:
            from docker.types import EndpointConfig

            name = self.plan.network_name
            assert name is not None
            options["network"] = name
            options["networking_config"] = {
                name: EndpointConfig(self._client.api._version, aliases=[spec.alias])
            }
            # Published on loopback only: nothing outside this machine reaches the cluster.
            container.ports[f"{spec.port}/tcp"] = ("127.0.0.1", spec.host_port)  # type: ignore[assignment]
        container.with_kwargs(**options)
        return container

    def _host_port(self, spec: ContainerSpec, container: DockerContainer) -> int:
        if self.plan.network == "host":
            assert spec.host_port is not None
            return spec.host_port
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        bindings = wrapped.attrs["NetworkSettings"]["Ports"][f"{spec.port}/tcp"]
        return int(bindings[0]["HostPort"])

    def _start(self, *, progress: Progress, timeout: float) -> None:
        labels = cluster_labels(self.plan.token)
        if self.plan.network_name is not None:
            self._client.networks.create(self.plan.network_name, driver="bridge", labels=labels)
        for spec in self.plan.containers:
            self._starting = spec
            where = f"127.0.0.1:{spec.host_port}" if spec.host_port else "a published port"
            progress(f"starting the {spec.role} container {spec.name} on {where}")
            container = self._create(spec, labels)
            self._containers[spec.role] = container
            container.start()
            port = self._host_port(spec, container)
            self._dsns[spec.role] = make_dsn(
                host="127.0.0.1", port=port, user=SUPERUSER, dbname=self.plan.dbname
            )
            if spec.role == "primary":
                admin = with_database(self._dsns["primary"], "postgres")
                _await_ready(
                    "primary",
                    container.get_wrapped_container(),
                    {"primary": admin},
                    timeout=timeout,
                )
                if self.plan.dbname != "postgres":
                    create_database(admin, self.plan.dbname)
            else:
                _await_ready(
                    spec.role, container.get_wrapped_container(), self._dsns, timeout=timeout
                )
        self._starting = None
        progress("cluster ready: replica streaming, PgBouncer accepting")

    def _log_tail(self, *, lines: int = 30) -> str:
        if self._starting is None or self._starting.role not in self._containers:
            return ""
        try:
            wrapped = self._containers[self._starting.role].get_wrapped_container()
            logs: bytes = wrapped.logs(tail=lines)
        except Exception:  # no container, or the engine went away: no tail to show
            return ""
        return logs.decode(errors="replace").rstrip()

    # -- faults and users --------------------------------------------------------------
    @property
    def replica(self) -> Node:
        """The replica's container, to stop as a fault would (as ``LocalCluster.replica``)."""
        return Node(self.container("replica"))

    def restart_replica(self, *, timeout: float = 60.0) -> None:
        """Start the replica's container again: it resumes streaming from where it was."""
        replica = self.container("replica")
        if _container_state(replica) == "running":
            replica.stop(timeout=30)
        replica.start()
        _await_ready("replica", replica, self._dsns, timeout=timeout)

    def allow_users(self, roles: Iterable[str]) -> None:
        """Append the roles to each PgBouncer container's auth file, and have it re-read it."""
        new = [r for r in dict.fromkeys(roles) if r not in self._allowed]
        lines = auth_file_text(new)
        if not lines:
            return
        for role, admin in self.pgbouncer_admin.items():
            result = self.container(role).exec_run(
                ["sh", "-c", f'printf "%s" "$1" >> {PGBOUNCER_DIR}/userlist.txt', "sh", lines],
                user=SUPERUSER,
            )
            if result.exit_code != 0:
                raise InfrastructureError(
                    f"could not add users to the {role} PgBouncer's auth file "
                    f"(exit {result.exit_code}): {result.output.decode(errors='replace')}"
                )
            with connect(admin, timeout=5) as conn:
                conn.execute("RELOAD")
        self._allowed.update(new)

    # -- stopping ----------------------------------------------------------------------
    def stop(self) -> None:
        self._dsns.clear()
        self._undo_clients()
        self._finalizer()


# A request the engine received just before Ctrl-C still completes: the container
# (or network) appears after the first listing. Listing again until it stays empty
# for this long, within the bound, catches it.
SETTLE_SECONDS = 1.5
SETTLE_BOUND = 10.0


def _remove_and_close(client: docker.DockerClient, token: str, interrupted: list[bool]) -> None:
    try:
        if interrupted[0]:
            # The request the signal cut short may have left this client's connection
            # half-read: remove through a connection of its own.
            client.close()
            client = open_engine(timeout=120)
        done = remove_cluster(client, token)
        if interrupted[0]:
            started = quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < SETTLE_SECONDS:
                if time.monotonic() - started > SETTLE_BOUND:
                    break
                time.sleep(0.1)
                again = remove_cluster(client, token)
                if again.removed:
                    quiet_since = time.monotonic()
                done.removed += again.removed
                done.problems += again.problems
    finally:
        client.close()
    if done.problems:
        raise InfrastructureError(
            f"could not remove {'; '.join(done.problems)}; remove them with "
            f"docker rm -f / docker network rm (label org.pgcutover.cluster={token})"
        )


def _testcontainers() -> None:
    try:
        from testcontainers.core.config import testcontainers_config
    except ImportError as exc:
        package = (exc.name or "testcontainers").partition(".")[0]
        raise InfrastructureError(
            f"the docker provider needs the {package!r} package, which cannot be imported "
            f"({exc}); pip install testcontainers (it brings the docker SDK), "
            "or use --provider local"
        ) from exc
    # Ryuk's image comes from Docker Hub; the provider's labels do its work instead.
    testcontainers_config.ryuk_disabled = not use_ryuk()


def start_docker_cluster(
    *,
    image: str | None = None,
    pgbouncer_image: str | None = None,
    dbname: str = "app",
    network: str | None = None,
    ports: Mapping[str, int] | None = None,
    poolers: Poolers | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> DockerCluster:
    """Start the cluster; ``timeout`` bounds each server's start once its image is there.

    ``poolers`` are the PgBouncers' settings (a plan's ``[pgbouncer]``; None: the defaults).

    ``image`` and ``network`` default to ``PGCUTOVER_DOCKER_IMAGE`` and
    ``PGCUTOVER_DOCKER_NETWORK``, then to the built image and host networking.
    """
    say = progress or quiet
    _testcontainers()
    image = image or os.environ.get(ENV_IMAGE) or DEFAULT_IMAGE
    network = network or os.environ.get(ENV_NETWORK) or "host"
    plan = plan_docker_cluster(
        image=image,
        pgbouncer_image=pgbouncer_image,
        dbname=dbname,
        network=network,
        ports=ports,
        poolers=poolers or DEFAULT_POOLERS,
    )
    client = open_engine(timeout=600)
    try:
        remove_stale(client, progress=say)
        for wanted in dict.fromkeys(c.image for c in plan.containers):
            ensure_image(client, wanted, progress=say)
    except BaseException:
        client.close()
        raise
    client.api.timeout = 120  # a container's start or stop, not an image build
    cluster = DockerCluster(plan, client=client)
    try:
        cluster._start(progress=say, timeout=timeout)
        cluster._undo_clients = clients_for(
            image=plan.spec("primary").image, server_major=_server_major(cluster)
        )
    except Exception as exc:
        failed = cluster._starting
        tail = cluster._log_tail()
        problems = _stop_quietly(cluster)
        what = f"the {failed.role} container {failed.name}" if failed else "the network"
        cause = _diagnose(failed, exc, tail) if failed else str(exc)
        after = f"could not remove {problems}" if problems else "removed everything it made"
        raise ClusterStartError(f"could not start {what}: {cause}; {after}", log_tail=tail) from exc
    except BaseException:
        # Ctrl-C (or an exit) mid-request: the engine may still be making a container.
        cluster._interrupted[0] = True
        problems = _stop_quietly(cluster)
        if problems:
            say(f"could not remove {problems}")
        raise
    return cluster


def _server_major(cluster: DockerCluster) -> int:
    with connect(cluster.endpoints.primary, timeout=5) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    return int(str(row[0])) // 10000 if row else 0


def _stop_quietly(cluster: DockerCluster) -> str:
    try:
        cluster.stop()
    except HarnessError as exc:
        return str(exc)
    except Exception as exc:  # the engine went away mid-cleanup: say so, keep the first error
        return f"the cluster's resources ({exc})"
    return ""
