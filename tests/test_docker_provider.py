"""The docker provider without an engine: what it would start, and how it fails and cleans up."""

from __future__ import annotations

import configparser
import gc
import sys
from pathlib import Path

import pytest

from harness.cluster import docker as provider
from harness.cluster.docker import (
    ContainerSpec,
    DockerCluster,
    docker_available,
    plan_docker_cluster,
    start_docker_cluster,
)
from harness.errors import ClusterStartError, InfrastructureError

PLAN = plan_docker_cluster(image="postgres:15", dbname="shop", token="t0ken")


def _ini(spec: ContainerSpec) -> configparser.ConfigParser:
    (ini,) = (f for f in spec.files if f.path.endswith("pgbouncer.ini"))
    parser = configparser.ConfigParser(comment_prefixes=(";", "#"))
    parser.read_string(ini.content.decode())
    return parser


def test_primary_enables_streaming_replication() -> None:
    primary = PLAN.spec("primary")
    assert primary.command[0] == "postgres"
    assert "wal_level=replica" in primary.command
    assert "hot_standby=on" in primary.command
    assert primary.env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert primary.env["POSTGRES_DB"] == "shop"
    (hba,) = primary.files
    assert hba.path.startswith("/docker-entrypoint-initdb.d/")
    assert b"host replication all all trust" in hba.content


def test_replica_clones_the_primary_as_a_hot_standby() -> None:
    replica, primary = PLAN.spec("replica"), PLAN.spec("primary")
    assert replica.image == primary.image
    assert replica.user == "postgres"
    script = replica.command[-1]
    (clone,) = (line for line in script.splitlines() if line.startswith("pg_basebackup"))
    assert f"-h {primary.alias}" in clone
    assert " -R " in clone
    assert "-X stream" in clone
    assert script.splitlines()[-1].startswith("exec postgres")
    assert "wal_level=replica" in script


@pytest.mark.parametrize(
    ("role", "server", "numbers"),
    [
        ("writer", "primary", ("transaction", 100, 25, 5, 5, 3600, 600)),
        ("reader", "replica", ("session", 200, 50, 10, 5, 7200, 900)),
    ],
)
def test_pgbouncer_ini_has_the_plans_pool(
    role: str, server: str, numbers: tuple[str | int, ...]
) -> None:
    spec = PLAN.spec(role)
    ini = _ini(spec)
    keys = (
        "pool_mode",
        "max_client_conn",
        "default_pool_size",
        "reserve_pool_size",
        "reserve_pool_timeout",
        "server_lifetime",
        "server_idle_timeout",
    )
    assert tuple(ini["pgbouncer"][k] for k in keys) == tuple(str(n) for n in numbers)
    assert ini["pgbouncer"]["listen_port"] == str(spec.port)
    server_alias = PLAN.spec(server).alias
    assert all(f"host={server_alias} " in v for v in ini["databases"].values())
    assert any(f.path.endswith("userlist.txt") for f in spec.files)


def test_every_container_shares_one_network() -> None:
    roles = [c.role for c in PLAN.containers]
    assert roles == ["primary", "replica", "writer", "reader"]
    assert {c.network for c in PLAN.containers} == {PLAN.network}
    assert len({c.alias for c in PLAN.containers}) == 4
    assert all(c.name.startswith(f"{PLAN.network}-") for c in PLAN.containers)
    assert plan_docker_cluster().network != plan_docker_cluster().network


def _dead_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    host = f"unix://{tmp_path}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


def test_docker_available_names_the_host_that_did_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = _dead_engine(monkeypatch, tmp_path)
    reason = docker_available(timeout=1.0)
    assert reason is not None
    assert f"no Docker engine answers at {host}" in reason
    assert "--provider local" in reason


class _FakeEngine:
    """Records what the provider asks testcontainers to do; one role may fail to start."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.fail = fail
        self.events: list[str] = []
        engine = self

        class Network:
            def __init__(self) -> None:
                self.name = "random"

            def create(self) -> Network:
                engine.events.append(f"create {self.name}")
                return self

            def remove(self) -> None:
                engine.events.append(f"remove {self.name}")

        class Container:
            status = "running"

            def __init__(self, image: str) -> None:
                self.image, self.name = image, ""

            def __getattr__(self, attr: str) -> object:
                # with_network, with_env, ...: the builder calls return the container.
                if not attr.startswith("with_"):
                    raise AttributeError(attr)
                return lambda *args, **kwargs: self

            def with_name(self, name: str) -> Container:
                self.name = name
                return self

            def start(self) -> Container:
                engine.events.append(f"start {self.name}")
                if engine.fail and self.name.endswith(f"-{engine.fail}"):
                    raise RuntimeError("container exited with code 1")
                return self

            def stop(self) -> None:
                engine.events.append(f"remove {self.name}")

            def get_wrapped_container(self) -> Container:
                return self

            def logs(self, *, tail: int) -> bytes:
                return b"pg_basebackup: error: could not connect to server\n"

            def reload(self) -> None:
                pass

            def get_container_host_ip(self) -> str:
                return "127.0.0.1"

            def get_exposed_port(self, port: int) -> int:
                return 40000 + len(engine.events)

        self.classes = (Container, Network)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> _FakeEngine:
    fake = _FakeEngine()
    monkeypatch.setattr(provider, "_testcontainers", lambda: fake.classes)
    monkeypatch.setattr(provider, "docker_available", lambda **_: None)
    monkeypatch.setattr(provider, "_await_ready", lambda *_, **__: None)
    return fake


def test_start_without_an_engine_raises_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = _dead_engine(monkeypatch, tmp_path)
    fake = _FakeEngine()
    monkeypatch.setattr(provider, "_testcontainers", lambda: fake.classes)
    with pytest.raises(InfrastructureError, match="no Docker engine answers") as info:
        start_docker_cluster()
    assert host in str(info.value)
    assert fake.events == []


# docker-py leaves the socket of its failed connect open (its bug, not ours).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_docker_sdk_errors_become_cluster_start_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Past the availability check, with the real testcontainers and still no engine.
    _dead_engine(monkeypatch, tmp_path)
    monkeypatch.setattr(provider, "docker_available", lambda **_: None)
    with pytest.raises(ClusterStartError, match="could not start docker network") as info:
        start_docker_cluster()
    assert type(info.value.__cause__).__module__.startswith("docker")
    del info  # the traceback holds the leaked socket: let it go while the filter applies
    gc.collect()


def test_a_failure_part_way_removes_exactly_what_was_made(engine: _FakeEngine) -> None:
    engine.fail = "replica"
    progress: list[str] = []
    with pytest.raises(
        ClusterStartError, match=r"could not start docker container \S+-replica"
    ) as info:
        start_docker_cluster(progress=progress.append)
    assert "could not connect to server" in info.value.log_tail
    net = engine.events[0].removeprefix("create ")
    assert engine.events == [
        f"create {net}",
        f"start {net}-primary",
        f"start {net}-replica",
        f"remove {net}-replica",
        f"remove {net}-primary",
        f"remove {net}",
    ]
    assert len(progress) == 2


def test_a_started_cluster_gives_mapped_endpoints_and_stops_once(engine: _FakeEngine) -> None:
    cluster = start_docker_cluster(dbname="shop")
    assert isinstance(cluster, DockerCluster)
    assert cluster.provider == "docker"
    eps = cluster.endpoints
    assert len({eps.primary, eps.replica, eps.writer, eps.reader}) == 4
    assert all(dsn.endswith("/shop") for dsn in (eps.primary, eps.writer, eps.reader))
    assert cluster.pgbouncer_admin["reader"] == eps.reader.replace("/shop", "/pgbouncer")
    with cluster:
        pass
    removed = [e for e in engine.events if e.startswith("remove")]
    assert len(removed) == 5
    cluster.stop()
    assert [e for e in engine.events if e.startswith("remove")] == removed
    with pytest.raises(InfrastructureError, match="not running"):
        _ = cluster.endpoints


def test_missing_testcontainers_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers.core.container", None)
    with pytest.raises(InfrastructureError, match="pip install testcontainers") as info:
        start_docker_cluster()
    assert "'testcontainers'" in str(info.value)
