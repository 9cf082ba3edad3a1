"""The docker provider on a real engine: the cluster, the gate, the fixtures, and clean exits.

With ``CI=true`` an engine that does not answer fails these scenarios (``.ci/setup``
starts one); elsewhere they skip with the reason. Everything they start carries the
provider's labels, and each scenario that can leave something behind checks, by
label, that it did not.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import psycopg
import pytest

from harness.cluster.docker import DockerCluster, start_docker_cluster
from harness.cluster.docker_engine import (
    LABEL_CLUSTER,
    LABEL_OWNER,
    docker_available,
    docker_host,
)
from harness.cluster.docker_image import DEFAULT_IMAGE
from harness.cluster.processes import free_port
from harness.errors import ClusterStartError, EngineUnavailable
from harness.testing.fix_cluster import missing_capability

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
Conn = psycopg.Connection[tuple[object, ...]]
NOBODY = 65534


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    """A client of the engine the provider uses; skips locally, fails in CI, without one."""
    reason = docker_available()
    if reason is not None:
        missing_capability(reason)
    client = docker.from_env(timeout=120)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def docker_cluster(engine: docker.DockerClient) -> Iterator[DockerCluster]:
    """One docker cluster (host networking) for this module; everything goes at the end."""
    with start_docker_cluster() as cluster:
        assert isinstance(cluster, DockerCluster)
        yield cluster
    assert _labelled(engine, token=cluster.plan.token) == set()


def _labelled(
    client: docker.DockerClient, *, token: str | None = None, owner_pid: int | None = None
) -> set[str]:
    """Containers, networks and volumes with the provider's labels, narrowed as asked."""
    found = set()
    listed = [
        ("container", c.name, c.labels)
        for c in client.containers.list(all=True, filters={"label": LABEL_CLUSTER})
    ]
    listed += [
        ("network", n.name, n.attrs.get("Labels") or {})
        for n in client.networks.list(filters={"label": LABEL_CLUSTER})
    ]
    listed += [
        ("volume", v.name, v.attrs.get("Labels") or {})
        for v in client.volumes.list(filters={"label": LABEL_CLUSTER})
    ]
    for kind, name, labels in listed:
        if token is not None and labels.get(LABEL_CLUSTER) != token:
            continue
        if owner_pid is not None and labels.get(LABEL_OWNER, "").split(":")[1:2] != [
            str(owner_pid)
        ]:
            continue
        found.add(f"{kind} {name}")
    return found


def _connect(dsn: str) -> Conn:
    # prepare_threshold=None: the writer pools by transaction, and the admin console
    # speaks only the simple query protocol.
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5, prepare_threshold=None)


def harness(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


# -- the cluster -----------------------------------------------------------------------
def test_replica_is_streaming_and_read_only(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.replica) as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert replica.execute("SELECT status FROM pg_stat_wal_receiver").fetchone() == (
            "streaming",
        )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("CREATE TABLE must_fail (id int)")
    with _connect(eps.primary) as primary:
        assert primary.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        states = primary.execute("SELECT state FROM pg_stat_replication").fetchall()
        assert states == [("streaming",)]


def test_primary_write_reaches_replica_after_wait(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.primary) as primary:
        primary.execute("CREATE TABLE docker_marker (v text)")
        primary.execute("INSERT INTO docker_marker VALUES ('written on the primary')")
    docker_cluster.wait_for_replica()
    with _connect(eps.replica) as replica:
        rows = replica.execute("SELECT v FROM docker_marker").fetchall()
    assert rows == [("written on the primary",)]


def test_pgbouncer_pools_have_the_plans_modes(docker_cluster: DockerCluster) -> None:
    eps = docker_cluster.endpoints
    dbname = docker_cluster.plan.dbname
    modes: dict[str, set[object]] = {}
    # A pool exists once a client has used it: hold one connection through each role.
    with _connect(eps.writer) as writer, _connect(eps.reader) as reader:
        assert writer.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert reader.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        for role, admin_dsn in docker_cluster.pgbouncer_admin.items():
            with _connect(admin_dsn) as admin:
                cur = admin.execute("SHOW POOLS")
                cols = [c.name for c in cur.description or ()]
                assert "pool_mode" in cols, f"{role} PgBouncer is older than 1.18: {cols}"
                pools = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            modes[role] = {p["pool_mode"] for p in pools if p["database"] == dbname}
    assert modes == {"writer": {"transaction"}, "reader": {"session"}}


def test_every_node_shares_the_hosts_network_on_its_own_loopback_port(
    docker_cluster: DockerCluster, engine: docker.DockerClient
) -> None:
    for spec in docker_cluster.plan.containers:
        attrs = engine.containers.get(spec.name).attrs
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        assert attrs["Config"]["Image"] == DEFAULT_IMAGE
        assert attrs["Config"]["Labels"][LABEL_CLUSTER] == docker_cluster.plan.token
        assert attrs["Config"]["Labels"][LABEL_OWNER].split(":")[1] == str(os.getpid())
        assert f"@127.0.0.1:{spec.port}/" in getattr(docker_cluster.endpoints, spec.role)
    with _connect(docker_cluster.endpoints.primary) as primary:
        assert primary.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        # The replica comes from loopback too: nothing crosses a bridge.
        rows = primary.execute("SELECT client_addr::text FROM pg_stat_replication").fetchall()
    assert rows == [("127.0.0.1/32",)]


def test_roles_a_plan_creates_can_connect_through_both_poolers(
    docker_cluster: DockerCluster,
) -> None:
    eps = docker_cluster.endpoints
    with _connect(eps.primary) as primary:
        primary.execute("CREATE ROLE docker_app LOGIN")
    docker_cluster.wait_for_replica()
    docker_cluster.allow_users(["docker_app"])
    for dsn in (eps.writer, eps.reader):
        with _connect(dsn.replace("postgres@", "docker_app@")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("docker_app",)


def test_a_bridge_cluster_publishes_its_ports_on_loopback_only(
    engine: docker.DockerClient,
) -> None:
    with start_docker_cluster(network="bridge") as cluster:
        assert isinstance(cluster, DockerCluster)
        name = cluster.plan.network_name
        assert name is not None
        assert engine.networks.get(name).attrs["Labels"][LABEL_CLUSTER] == cluster.plan.token
        for spec in cluster.plan.containers:
            ports = engine.containers.get(spec.name).attrs["NetworkSettings"]["Ports"]
            assert [b["HostIp"] for b in ports[f"{spec.port}/tcp"]] == ["127.0.0.1"]
        with (
            _connect(cluster.endpoints.writer) as writer,
            _connect(cluster.endpoints.reader) as reader,
        ):
            assert writer.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            assert reader.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    assert _labelled(engine, token=cluster.plan.token) == set()


# -- the whole product on containers -----------------------------------------------------
def _failed_checks(report: Path) -> list[tuple[str, object]]:
    checks = json.loads(report.read_text())["checks"]
    return [(c["name"], c.get("offenders")) for c in checks if c["verdict"] == "fail"]


# PgBouncer 1.24 (trixie's, beside PostgreSQL 17) keeps protocol-level prepared statements
# in transaction pooling: the as-written plan's preparing clients work behind its writer
# there, and not behind this machine's 1.18. Every other finding is the same.
DIFFER_ON_17 = {"sessions.prepared_statements"}


@pytest.mark.slow
def test_the_gate_on_postgresql_17_containers_finds_what_it_finds_on_15_locally(
    engine: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole gate, with traffic, on 15 (this machine's binaries) and 17 (containers).

    The corrected plan passes every check on 15 (``test_gate.py``): on 17 it must too."""
    timings: dict[tuple[str, str], float] = {}
    targets = {"docker": ["--provider", "docker", "--pg-version", "17"], "local": []}
    for plan, expected in (("kct", 0), ("as-written", 1)):
        for provider, options in targets.items():
            if provider == "local" and plan == "kct":
                continue
            reports = tmp_path / f"{provider}-{plan}"
            started = time.perf_counter()
            done = harness(
                "gate", "--plan", f"plans/{plan}", *options,
                "--reports", str(reports), "--traffic-clients", "4",
            )  # fmt: skip
            timings[(plan, provider)] = time.perf_counter() - started
            assert done.returncode == expected, f"{provider} {plan}:\n{done.stdout}\n{done.stderr}"
        ran = json.loads((tmp_path / f"docker-{plan}" / "gate.json").read_text())
        assert str(ran["postgresql"]).startswith("17"), ran["postgresql"]
        on_17, on_15 = (
            [c for c in _failed_checks(tmp_path / f"{p}-{plan}" / "gate.json")
             if c[0] not in DIFFER_ON_17] if (tmp_path / f"{p}-{plan}").exists() else []
            for p in ("docker", "local")
        )  # fmt: skip
        assert on_17 == on_15
    as_written = {c[0] for c in _failed_checks(tmp_path / "local-as-written" / "gate.json")}
    assert as_written >= DIFFER_ON_17
    assert len(as_written - DIFFER_ON_17) >= 5
    with capsys.disabled():
        print(
            "\ngate, same run: "
            + "; ".join(
                f"{plan} {provider} {sec:.1f} s" for (plan, provider), sec in timings.items()
            )
        )


@pytest.mark.slow
def test_the_fixtures_and_the_fallback_scenario_run_on_containers(
    engine: docker.DockerClient,
) -> None:
    selected = [
        "scenarios/test_cluster.py::test_replica_is_streaming_and_read_only",
        "scenarios/test_cluster.py::test_primary_write_reaches_replica_after_wait",
        "scenarios/test_cluster.py::test_legacy_counts_are_the_plans",
        "scenarios/test_cluster.py::test_pgbouncer_pools_have_the_configured_modes",
        "scenarios/test_cluster.py::test_reader_pool_reaches_the_replica",
        "scenarios/test_replica_fallback.py",
    ]
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "--pg-provider", "docker", "-q", "-p", "no:randomly",
         *selected],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "CI": "true"},
    ) as proc:  # fmt: skip
        out, _ = proc.communicate(timeout=600)
    summary = out.strip().splitlines()[-1]
    assert proc.returncode == 0, out[-4000:]
    assert summary.startswith("6 passed"), summary
    assert "skipped" not in summary
    # The session's cluster went with the session (only its own: the engine is shared).
    assert _labelled(engine, owner_pid=proc.pid) == set()


# -- clean exits -----------------------------------------------------------------------
def _up_until(line: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``harness up --provider docker`` started and read until its stderr shows ``line``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "up", "--provider", "docker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    seen = []
    for said in proc.stderr:
        seen.append(said)
        if line in said:
            return proc
    proc.wait(timeout=60)
    proc.stderr.close()
    pytest.fail(f"harness up ended (exit {proc.returncode}) before {line!r}:\n{''.join(seen)}")


@pytest.mark.parametrize(
    ("moment", "sent", "exit_code"),
    [
        ("starting the replica container", signal.SIGINT, 130),
        ("starting the writer container", signal.SIGINT, 130),
        ("seeding the legacy database", signal.SIGINT, 130),
        ("up; stop with Ctrl-C", signal.SIGINT, 0),
        ("starting the reader container", signal.SIGTERM, 143),
    ],
    ids=[
        "ctrl-c-while-starting-replica",
        "ctrl-c-while-starting-writer",
        "ctrl-c-while-seeding",
        "ctrl-c-once-up",
        "sigterm-while-starting",
    ],
)
def test_an_interrupted_up_leaves_no_container_network_or_volume(
    engine: docker.DockerClient, moment: str, sent: signal.Signals, exit_code: int
) -> None:
    proc = _up_until(moment)
    try:
        # Something of this run exists now, or the scenario proves nothing.
        assert any(name.startswith("container ") for name in _labelled(engine, owner_pid=proc.pid))
        proc.send_signal(sent)
        _, said = proc.communicate(timeout=60)
        assert proc.returncode == exit_code, said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert _labelled(engine, owner_pid=proc.pid) == set(), said


def test_a_killed_run_is_cleaned_up_at_the_next_start(engine: docker.DockerClient) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    token = f"stale{child.pid}"
    labels = {LABEL_CLUSTER: token, LABEL_OWNER: f"{socket.gethostname()}:{child.pid}:1"}
    engine.networks.create(f"pgcutover-{token}", labels=labels)
    engine.volumes.create(f"pgcutover-{token}", labels=labels)
    engine.containers.create(
        DEFAULT_IMAGE,
        ["-c", "sleep 600"],
        entrypoint=["/bin/sh"],
        name=f"pgcutover-{token}",
        labels=labels,
    )
    assert len(_labelled(engine, token=token)) == 3
    # The next start cleans up first; an image that cannot be had then stops it (exit 2).
    done = harness("up", "--provider", "docker", "--image", "pgcutover/never-built:0")
    assert done.returncode == 2, done.stderr
    assert "removed what an earlier run" in done.stderr
    assert _labelled(engine, token=token) == set()
    assert (
        "the image pgcutover/never-built:0 is not on the Docker engine and cannot be pulled"
        in done.stderr
    )
    assert "harness image build" in done.stderr


# -- bad input -----------------------------------------------------------------------
def test_no_engine_exits_2_with_the_cause_and_the_fix(tmp_path: Path) -> None:
    done = harness(
        "gate",
        "--provider",
        "docker",
        "--plan",
        "plans/kct",
        env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
    )
    assert done.returncode == 2
    assert f"no Docker engine answers at unix://{tmp_path}/none.sock" in done.stderr
    assert "start one (dockerd as root" in done.stderr
    assert "Traceback" not in done.stderr


def _as_nobody(probe: Callable[[], str | None]) -> str:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            answer = probe() or ""
        except BaseException as exc:
            answer = f"raised {exc!r}"
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_the_engine_refuses_a_user_outside_the_docker_group(engine: docker.DockerClient) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can become another user to be refused")
    host = docker_host()
    if not host.startswith("unix://"):
        pytest.skip(f"the engine at {host} is not behind a Unix socket's permissions")
    sock = Path(host.removeprefix("unix://"))
    if sock.stat().st_mode & 0o007:
        pytest.skip(f"{sock} lets every user in")

    def start() -> str | None:
        try:
            start_docker_cluster()
        except EngineUnavailable as exc:
            return str(exc)
        return "started"

    said = _as_nobody(start)
    assert "refuses this user" in said
    assert "docker group" in said
    assert "--provider local" in said


@pytest.mark.parametrize("role", ["primary", "replica", "writer"])
def test_a_port_taken_is_named_and_nothing_is_left_running(
    engine: docker.DockerClient, role: str
) -> None:
    mine = _labelled(engine, owner_pid=os.getpid())  # the engine is shared: ours only
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ClusterStartError) as info:
            start_docker_cluster(ports={role: port})
    said = str(info.value)
    assert f"could not start the {role} container" in said
    assert f"port {port} on 127.0.0.1 is taken by another process" in said
    assert "removed everything it made" in said
    assert _labelled(engine, owner_pid=os.getpid()) == mine


def test_the_image_build_is_cached_and_a_base_that_cannot_be_had_exits_2(
    engine: docker.DockerClient,
) -> None:
    done = harness("image", "build")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[:2] == [DEFAULT_IMAGE, "cached"]
    done = harness("image", "build", "--force", "--base", "pgcutover/no-such-base:0")
    assert done.returncode == 2
    assert (
        "the base image pgcutover/no-such-base:0 is not on the engine and cannot be pulled"
        in done.stderr
    )
    assert "docker load" in done.stderr


def test_a_base_the_build_cannot_run_on_exits_2_and_keeps_the_built_image(
    engine: docker.DockerClient,
) -> None:
    # A base with no shell: the Dockerfile's first RUN fails, as it would with no apt-get.
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        content = b"ID=nothing\n"
        member = tarfile.TarInfo("etc/os-release")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    base = f"pgcutover/test-no-shell:{os.getpid()}"
    repository, _, tag = base.partition(":")
    engine.api.import_image_from_data(layer.getvalue(), repository=repository, tag=tag)
    containers_before = {c.id for c in engine.containers.list(all=True)}
    try:
        done = harness("image", "build", "--force", "--base", base)
    finally:
        engine.images.remove(base)
    assert done.returncode == 2
    assert f"could not build {DEFAULT_IMAGE} on {base}" in done.stderr
    assert "/bin/sh" in done.stderr
    assert "docker save / docker load" in done.stderr
    # The failed build leaves no container behind, and the image built before stays.
    assert {c.id for c in engine.containers.list(all=True)} == containers_before
    assert engine.images.get(DEFAULT_IMAGE).labels["org.pgcutover.dockerfile-sha256"]


# -- the fault, last: it stops this module's replica --------------------------------------
def test_stopping_the_replica_container_moves_reads_to_the_writer_and_back(
    docker_cluster: DockerCluster,
) -> None:
    from harness.routing import Database, ReplicaPolicy

    eps = docker_cluster.endpoints
    policy = ReplicaPolicy(check_interval=0.1, retry_min=0.05, retry_max=0.2)
    with Database(eps.writer, eps.reader, replica=policy) as db:
        assert db.fetchone("SELECT pg_is_in_recovery()") == (True,)
        docker_cluster.replica.stop()
        assert not docker_cluster.replica.running()
        deadline = time.monotonic() + 30
        while db.fetchone("SELECT pg_is_in_recovery()") != (False,):
            assert time.monotonic() < deadline, "reads never moved to the writer"
            time.sleep(0.05)
        assert db.health_check() == {"write": True, "read": False}
        docker_cluster.restart_replica()
        deadline = time.monotonic() + 30
        while db.fetchone("SELECT pg_is_in_recovery()") != (True,):
            assert time.monotonic() < deadline, "reads never came back to the replica"
            time.sleep(0.05)
        assert db.stats()["fallbacks"]["replica_down"] >= 1
    docker_cluster.wait_for_replica()
