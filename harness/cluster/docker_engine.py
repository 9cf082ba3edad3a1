"""The Docker engine as the docker provider sees it: reaching it, and cleaning up by label.

Every container, network and volume the provider makes carries two labels: the
cluster's token, and its owner (host name, pid and the pid's start time). Removing
a cluster is removing everything with its token, whatever got as far as being
created; a later start removes what a killed run left, by finding owners that no
longer live on this host. testcontainers' own reaper (Ryuk) would do the same from
a helper container, but its image comes from a registry that many CI machines
cannot reach, so it is off unless ``TESTCONTAINERS_RYUK_DISABLED=false`` says so.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EngineUnavailable
from harness.progress import Progress

if TYPE_CHECKING:
    import docker

__all__ = [
    "LABEL_CLUSTER",
    "LABEL_OWNER",
    "cluster_labels",
    "docker_available",
    "docker_host",
    "engine",
    "open_engine",
    "owner_is_gone",
    "remove_cluster",
    "remove_stale",
    "use_ryuk",
]

LABEL_CLUSTER = "org.pgcutover.cluster"
LABEL_OWNER = "org.pgcutover.owner"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
RYUK_SWITCH = "TESTCONTAINERS_RYUK_DISABLED"


def docker_host() -> str:
    """The engine testcontainers will use: DOCKER_HOST, its properties file, the context."""
    try:
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    return get_docker_host() or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def use_ryuk() -> bool:
    """Ryuk only when asked for: ``TESTCONTAINERS_RYUK_DISABLED=false``."""
    return os.environ.get(RYUK_SWITCH, "").strip().lower() in {"false", "0", "no"}


def _probe(host: str, *, timeout: float) -> None:
    # docker-py 7 leaves the socket of a failed unix connect open, and tells "refused"
    # from "not allowed" less clearly than the OS does: knock on the socket first.
    if not host.startswith("unix://"):
        return
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except PermissionError as exc:
            raise EngineUnavailable(
                f"the Docker engine at {host} refuses this user: {exc}; add the user to the "
                "docker group (usermod -aG docker USER, then log in again), run as root, "
                "or use --provider local"
            ) from exc
        except OSError as exc:
            raise EngineUnavailable(
                f"no Docker engine answers at {host}: {exc}; start one (dockerd as root, or "
                "systemctl start docker), point DOCKER_HOST at one, or use --provider local"
            ) from exc


def _client(*, timeout: float) -> docker.DockerClient:
    try:
        import docker
    except ImportError as exc:
        raise EngineUnavailable(
            f"the docker provider needs the docker package, which cannot be imported ({exc}); "
            "pip install testcontainers (it brings the docker SDK), or use --provider local"
        ) from exc
    host = docker_host()
    _probe(host, timeout=timeout)
    client = None
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
        client.ping()
    except Exception as exc:  # any failure means no engine we can use; say which
        if client is not None:
            client.close()
        raise _unusable(host, exc) from exc
    return client


def _api_error(exc: BaseException) -> Any:
    """The engine's HTTP answer in ``exc``'s chain (docker-py wraps it when it asks the version)."""
    import docker

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, docker.errors.APIError) and seen.status_code is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _unusable(host: str, exc: Exception) -> EngineUnavailable:
    answer = _api_error(exc)
    if answer is None:
        return EngineUnavailable(
            f"no Docker engine answers at {host}: {exc}; start one (dockerd as root, or "
            "systemctl start docker), point DOCKER_HOST at one, or use --provider local"
        )
    status, said = answer.status_code, answer.explanation
    if status in (401, 403):
        return EngineUnavailable(
            f"the Docker engine at {host} refuses this user (HTTP {status}: {said}); ask its "
            "owner for access (or, for a socket proxy, to allow this API), or use --provider local"
        )
    return EngineUnavailable(
        f"the Docker engine at {host} answers with an error (HTTP {status}: {said}); "
        "check `docker info`, or use --provider local"
    )


def open_engine(*, timeout: float = 60.0) -> docker.DockerClient:
    """A client of an engine that answered a ping within 5 s, then patient for ``timeout``
    per request (an image build, a pull); raises :class:`EngineUnavailable`. Close it."""
    client = _client(timeout=min(timeout, 5.0))
    client.api.timeout = timeout
    return client


@contextmanager
def engine(*, timeout: float = 60.0) -> Iterator[docker.DockerClient]:
    """:func:`open_engine`, closed after the block."""
    client = open_engine(timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def docker_available(*, timeout: float = 3.0) -> str | None:
    """None when a Docker engine answers; otherwise why not, in words a skip can show."""
    try:
        _client(timeout=timeout).close()
    except EngineUnavailable as exc:
        return str(exc)
    return None


# -- ownership -------------------------------------------------------------------------
def _start_time(pid: int) -> str:
    """The pid's start time in clock ticks since boot, which a reused pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return stat.rpartition(")")[2].split()[19]


def owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_is_gone(label: str) -> bool:
    """True when ``label`` names a process of this host that no longer runs.

    Resources of another host (an engine shared over TCP) are never judged here.
    """
    host, _, rest = label.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by someone else
    return bool(started) and _start_time(pid) not in ("", started)


def cluster_labels(token: str) -> dict[str, str]:
    return {LABEL_CLUSTER: token, LABEL_OWNER: owner()}


@dataclass
class Removal:
    """What a clean-up removed and what it could not."""

    removed: list[str]
    problems: list[str]


def _remove(client: docker.DockerClient, selector: str) -> Removal:
    import docker

    done = Removal(removed=[], problems=[])
    filters: dict[str, Any] = {"label": selector}
    # Containers first: a network or volume in use cannot go.
    # ignore_removed: a container that goes while the list is read is not an error here.
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        try:
            container.remove(force=True, v=True)
            done.removed.append(f"container {container.name}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            done.problems.append(f"container {container.name}: {exc.explanation}")
    for network in client.networks.list(filters=filters):
        try:
            network.remove()
            done.removed.append(f"network {network.name}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            done.problems.append(f"network {network.name}: {exc.explanation}")
    for volume in client.volumes.list(filters=filters):
        try:
            volume.remove(force=True)
            done.removed.append(f"volume {volume.name}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            done.problems.append(f"volume {volume.name}: {exc.explanation}")
    return done


def remove_cluster(client: docker.DockerClient, token: str) -> Removal:
    """Remove every container, network and volume labelled with ``token``."""
    return _remove(client, f"{LABEL_CLUSTER}={token}")


def _owners(client: docker.DockerClient) -> dict[str, str]:
    owners: dict[str, str] = {}
    filters = {"label": LABEL_CLUSTER}
    listed: list[Any] = [
        *client.containers.list(all=True, filters=filters),
        *client.networks.list(filters=filters),
        *client.volumes.list(filters=filters),
    ]
    for item in listed:
        labels = item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}
        token = labels.get(LABEL_CLUSTER)
        if token:
            owners.setdefault(token, labels.get(LABEL_OWNER, ""))
    return owners


def remove_stale(client: docker.DockerClient, *, progress: Progress) -> Removal:
    """Remove clusters whose owning process is gone (killed before it could clean up)."""
    total = Removal(removed=[], problems=[])
    for token, label in sorted(_owners(client).items()):
        if not owner_is_gone(label):
            continue
        done = remove_cluster(client, token)
        if done.removed:
            progress(
                f"removed what an earlier run ({label}) left behind: {', '.join(done.removed)}"
            )
        total.removed += done.removed
        total.problems += done.problems
    return total
