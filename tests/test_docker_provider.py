"""The docker provider without an engine: what it would start, and how it fails when none answers.

Everything that needs a Docker engine is in ``scenarios/test_docker_cluster.py``.
"""

from __future__ import annotations

import configparser
import hashlib
import http.server
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import build_parser, docker_options
from harness.cluster import docker_engine
from harness.cluster.docker import DockerPlan, plan_docker_cluster, start_docker_cluster
from harness.cluster.docker_engine import cluster_labels, docker_available, owner, owner_is_gone
from harness.cluster.docker_image import DEFAULT_IMAGE, dockerfile, image_for
from harness.errors import EngineUnavailable, InfrastructureError, UsageError

HOST = plan_docker_cluster(dbname="shop", token="t0ken")
NOBODY = 65534
BRIDGE = plan_docker_cluster(dbname="shop", token="br1dge", network="bridge")


def _ini(plan: DockerPlan, role: str) -> configparser.ConfigParser:
    script = plan.spec(role).script
    body = script.split("<<'PGCUTOVER_INI'\n", 1)[1].split("\nPGCUTOVER_INI\n", 1)[0]
    parser = configparser.ConfigParser(comment_prefixes=(";", "#"))
    parser.read_string(body)
    return parser


def _settings(script: str) -> dict[str, str]:
    return dict(re.findall(r"-c (\w+)=(\S+)", script))


@pytest.mark.parametrize("plan", [HOST, BRIDGE], ids=["host", "bridge"])
def test_every_script_is_valid_shell(plan: DockerPlan) -> None:
    for spec in plan.containers:
        done = subprocess.run(["sh", "-n", "-c", spec.script], capture_output=True, text=True)
        assert done.returncode == 0, f"{spec.role}: {done.stderr}"


def test_host_networking_gives_each_node_its_own_loopback_port() -> None:
    assert [c.role for c in HOST.containers] == ["primary", "replica", "writer", "reader"]
    ports = [c.port for c in HOST.containers]
    assert len(set(ports)) == 4
    assert all(c.host_port == c.port for c in HOST.containers)
    assert HOST.network_name is None
    for role in ("primary", "replica"):
        settings = _settings(HOST.spec(role).script)
        assert settings["listen_addresses"] == "127.0.0.1"
        assert settings["port"] == str(HOST.spec(role).port)
        assert settings["wal_level"] == "logical"  # the change ledger decodes the WAL
    assert "pg_hba.conf" not in HOST.spec("primary").script  # initdb's loopback trust suffices


def test_the_replica_clones_the_primary_over_loopback() -> None:
    script = HOST.spec("replica").script
    (clone,) = (line for line in script.splitlines() if "pg_basebackup" in line)
    assert f"-h 127.0.0.1 -p {HOST.spec('primary').port}" in clone
    assert " -R " in clone
    assert "-X stream" in clone
    assert script.splitlines()[-1].startswith("exec postgres")
    assert "initdb" in HOST.spec("primary").script
    assert "initdb" not in script


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
    keys = (
        "pool_mode",
        "max_client_conn",
        "default_pool_size",
        "reserve_pool_size",
        "reserve_pool_timeout",
        "server_lifetime",
        "server_idle_timeout",
    )
    for plan, listen, target in (
        (HOST, "127.0.0.1", f"host=127.0.0.1 port={HOST.spec(server).port}"),
        (BRIDGE, "0.0.0.0", f"host={BRIDGE.spec(server).alias} port=5432"),
    ):
        ini = _ini(plan, role)
        assert tuple(ini["pgbouncer"][k] for k in keys) == tuple(str(n) for n in numbers)
        assert ini["pgbouncer"]["listen_addr"] == listen
        assert ini["pgbouncer"]["listen_port"] == str(plan.spec(role).port)
        assert all(v.startswith(target) for v in ini["databases"].values())
        assert "dbname=shop" in ini["databases"][role]


def test_a_bridge_cluster_publishes_on_loopback_ports_the_engine_picks() -> None:
    assert BRIDGE.network_name == "pgcutover-br1dge"
    assert [c.port for c in BRIDGE.containers] == [5432, 5432, 6432, 6432]
    assert all(c.host_port is None for c in BRIDGE.containers)
    assert len({c.alias for c in BRIDGE.containers}) == 4
    assert "-c 'listen_addresses=*'" in BRIDGE.spec("primary").script  # quoted for sh
    primary = BRIDGE.spec("primary").script
    assert "host replication all all trust" in primary
    assert f"-h {BRIDGE.spec('primary').alias} -p 5432" in BRIDGE.spec("replica").script


def test_names_are_unique_per_cluster_and_ports_can_be_fixed() -> None:
    assert all(c.name.startswith("pgcutover-t0ken-") for c in HOST.containers)
    assert plan_docker_cluster().token != plan_docker_cluster().token
    fixed = plan_docker_cluster(ports={"primary": 15432, "reader": 16432})
    assert fixed.spec("primary").port == 15432
    assert fixed.spec("reader").host_port == 16432
    assert "-p 15432" in fixed.spec("replica").script
    bridged = plan_docker_cluster(network="bridge", ports={"writer": 16433})
    assert (bridged.spec("writer").port, bridged.spec("writer").host_port) == (6432, 16433)


def test_bad_choices_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown docker network 'overlay'; choose one of host"):
        plan_docker_cluster(network="overlay")
    with pytest.raises(UsageError, match=r"unknown roles \['standby'\]"):
        plan_docker_cluster(ports={"standby": 1})


def test_the_image_is_tagged_with_its_dockerfiles_hash() -> None:
    text = dockerfile()
    assert DEFAULT_IMAGE.endswith(hashlib.sha256(text).hexdigest()[:12])
    assert HOST.spec("primary").image == DEFAULT_IMAGE == HOST.spec("writer").image
    lines = " ".join(text.decode().replace("\\\n", " ").split())
    assert "ARG BASE=debian:bookworm-slim" in lines
    assert "ARG PG_MAJOR=15" in lines
    assert re.search(
        r"install .*postgresql-\$\{PG_MAJOR\} postgresql-client-\$\{PG_MAJOR\} pgbouncer", lines
    )
    assert DEFAULT_IMAGE == image_for(15) != image_for(17)
    assert image_for(17).startswith("pgcutover/postgres:17-")
    assert "create_main_cluster = false" in lines
    assert "ENTRYPOINT" not in lines


def test_an_image_given_runs_the_servers_and_the_poolers_unless_told_apart() -> None:
    plan = plan_docker_cluster(image="postgres:15", pgbouncer_image="bouncer:1")
    assert {plan.spec(r).image for r in ("primary", "replica")} == {"postgres:15"}
    assert {plan.spec(r).image for r in ("writer", "reader")} == {"bouncer:1"}


# -- owners and the labels that find them ----------------------------------------------
def test_this_process_owns_its_labels_and_a_finished_one_does_not() -> None:
    labels = cluster_labels("tok")
    assert labels[docker_engine.LABEL_CLUSTER] == "tok"
    assert labels[docker_engine.LABEL_OWNER] == owner()
    assert not owner_is_gone(owner())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert owner_is_gone(f"{socket.gethostname()}:{child.pid}:1")
    host, pid, _started = owner().split(":")
    # Same pid, another start time: the pid was reused by a process that owns nothing.
    assert owner_is_gone(f"{host}:{pid}:1")
    # Another host's resources are never judged from here.
    assert not owner_is_gone(f"not-{host}:{child.pid}:1")
    assert not owner_is_gone("garbage")


def test_ryuk_stays_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)
    assert not docker_engine.use_ryuk()
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    assert not docker_engine.use_ryuk()
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "false")
    assert docker_engine.use_ryuk()


# -- no engine -------------------------------------------------------------------------
def _dead_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    host = f"unix://{tmp_path}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


def test_docker_available_names_the_host_that_did_not_answer_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = _dead_engine(monkeypatch, tmp_path)
    reason = docker_available(timeout=1.0)
    assert reason is not None
    assert f"no Docker engine answers at {host}" in reason
    assert "start one (dockerd as root" in reason
    assert "--provider local" in reason


def test_a_socket_nobody_serves_is_no_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # bound, never listening: connect is refused
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        with pytest.raises(EngineUnavailable, match="no Docker engine answers") as info:
            start_docker_cluster()
    assert "Connection refused" in str(info.value)


def as_another_user(probe: Callable[[], str | None]) -> str:
    """``probe``'s answer in a forked child that runs as nobody (when we are root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if os.geteuid() == 0:
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


def test_a_socket_this_user_may_not_use_is_an_engine_that_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tempfile.TemporaryDirectory() as scratch, socket.socket(socket.AF_UNIX) as sock:
        Path(scratch).chmod(0o755)
        path = Path(scratch) / "locked.sock"
        sock.bind(str(path))
        sock.listen()
        path.chmod(0o600)  # as Docker's socket, which only root and the docker group may use
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        reason = as_another_user(lambda: docker_available(timeout=1.0))
    assert "refuses this user" in reason
    assert "Permission denied" in reason
    assert "docker group" in reason


class _RefusingEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """An engine behind an access-control proxy that refuses every request, as such proxies do."""

    daemon_threads = True


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"message":"access to this endpoint is denied"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass

    # the Unix socket has no peer address; BaseHTTPRequestHandler wants one to log
    def address_string(self) -> str:
        return "unix"


def test_an_engine_that_answers_403_refuses_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "proxy.sock"
    with _RefusingEngine(str(path), _Refuse) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
            with pytest.raises(EngineUnavailable, match="refuses this user") as info:
                start_docker_cluster()
        finally:
            server.shutdown()
            thread.join()
    assert "HTTP 403" in str(info.value)
    assert "access to this endpoint is denied" in str(info.value)


def test_missing_testcontainers_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers.core.config", None)
    with pytest.raises(InfrastructureError, match="pip install testcontainers") as info:
        start_docker_cluster()
    assert "'testcontainers'" in str(info.value)


# -- the command line ------------------------------------------------------------------
def test_the_cli_passes_docker_choices_only_to_the_docker_provider() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "gate",
            "--plan",
            "p",
            "--provider",
            "docker",
            "--image",
            "x:1",
            "--docker-network",
            "bridge",
        ]
    )
    assert docker_options(args) == {"image": "x:1", "network": "bridge"}
    args = parser.parse_args(["up", "--image", "x:1"])
    assert docker_options(args) == {}
    args = parser.parse_args(["image", "build", "--base", "debian:bookworm", "--force"])
    assert (args.base, args.force) == ("debian:bookworm", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--provider", "docker", "--docker-network", "overlay"])
