"""``harness up`` from start to signal, and every kind of bad input it can meet.

Each bad input must give one clear message naming the cause and the fix, exit with
code 2, and leave no process and no temporary directory behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import harness.cluster.local as local
from harness.cluster.local import default_base_dir, start_local_cluster
from harness.errors import ClusterStartError

HARNESS = [sys.executable, "-m", "harness.cli"]


def _servers_in(base: Path) -> set[int]:
    """Pids of processes whose command line names a directory under ``base``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(base) in cmd:
            pids.add(int(entry.name))
    return pids


@pytest.fixture
def base_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory of this test's own for the clusters it starts, so that what is left
    behind is told apart from other clusters running on the machine. Beside the
    usual one, not under pytest's tmp_path: the server user must be able to enter it."""
    base = Path(tempfile.mkdtemp(prefix="cli-up-", dir=default_base_dir()))
    base.chmod(0o755)
    monkeypatch.setenv("PGCUTOVER_TMPDIR", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def leaves_nothing_behind(base_dir: Path) -> Iterator[None]:
    yield
    left = [
        p.name for p in base_dir.glob("pgcutover-*") if not p.name.startswith("pgcutover-initdb")
    ]
    assert left == [], "a temporary directory was left behind"
    assert _servers_in(base_dir) == set(), "a server process was left running"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARNESS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _accepts(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True):
            return True
    except psycopg.OperationalError:
        return False


@pytest.mark.usefixtures("leaves_nothing_behind")
def _printed_dsns(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The four NAME=DSN lines ``harness up`` prints once the cluster is up."""
    assert proc.stdout is not None
    env: dict[str, str] = {}
    while len(env) < 4:
        line = proc.stdout.readline()
        assert line, f"harness up ended early: {proc.stderr.read() if proc.stderr else ''}"
        key, _, value = line.strip().partition("=")
        env[key] = value
    return env


def test_up_prints_the_four_dsns_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [*HARNESS, "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        env = _printed_dsns(proc)
        assert set(env) == {"PRIMARY_URL", "REPLICA_URL", "DATABASE_URL", "DATABASE_READONLY_URL"}
        recovery = {}
        for key, dsn in env.items():
            with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
                row = conn.execute("SELECT pg_is_in_recovery(), count(*) FROM customers").fetchone()
                assert row is not None
                recovery[key] = row[0]
                assert row[1] == 3369
        assert recovery == {
            "PRIMARY_URL": False,
            "DATABASE_URL": False,
            "REPLICA_URL": True,
            "DATABASE_READONLY_URL": True,
        }
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not any(_accepts(dsn) for dsn in env.values())


def test_up_with_a_migrated_plan_serves_the_target_to_the_plans_roles() -> None:
    """What a load test before cutover points at: the plan applied, its PgBouncers in front,
    its roles let through them."""
    kct = Path(__file__).resolve().parent.parent / "plans" / "kct"
    with subprocess.Popen(
        [*HARNESS, "up", "--plan", str(kct), "--migrated"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        env = _printed_dsns(proc)
        writer = psycopg.conninfo.make_conninfo(env["DATABASE_URL"], user="kct_app")
        with psycopg.connect(writer, autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute("SELECT current_user, count(*) FROM tenant_kct.customers").fetchone()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert row == ("kct_app", 3369)


def test_legacy_on_the_command_line_wins_over_the_plans_missing_dump(tmp_path: Path) -> None:
    """A plan copied without its ``legacy =`` dump is gated on the one ``--legacy`` names."""
    plans = Path(__file__).resolve().parent.parent / "plans"
    copy = tmp_path / "chinook"
    shutil.copytree(plans / "chinook", copy, ignore=shutil.ignore_patterns("legacy.sql"))
    dump = tmp_path / "chinook.sql"
    shutil.copyfile(plans / "chinook" / "legacy.sql", dump)
    with subprocess.Popen(
        [*HARNESS, "up", "--plan", str(copy), "--legacy", str(dump)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            env = _printed_dsns(proc)
            with psycopg.connect(env["PRIMARY_URL"], autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM public.track").fetchone()
        finally:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert row is not None
    assert row[0] > 0


def test_migrated_without_a_plan_is_refused() -> None:
    done = _run("up", "--migrated")
    assert done.returncode == 2
    assert "--migrated applies a plan: give it with --plan DIR" in done.stderr


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_unusable_pg_bin(tmp_path: Path) -> None:
    done = _run("up", "--pg-bin", str(tmp_path))
    assert done.returncode == 2
    assert f"--pg-bin {tmp_path} is not usable" in done.stderr
    assert "pg_config --bindir" in done.stderr


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_missing_pgbouncer(tmp_path: Path) -> None:
    done = _run("up", env={"PGCUTOVER_PGBOUNCER": str(tmp_path / "pgbouncer")})
    assert done.returncode == 2
    assert "PGCUTOVER_PGBOUNCER" in done.stderr
    assert "is not an executable file" in done.stderr


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_dump_that_fails_to_load(tmp_path: Path) -> None:
    dump = tmp_path / "broken.sql"
    dump.write_text("CREATE TABLE ok (id int);\nCREATE TABLE broken (id nosuchtype);\n")
    done = _run("up", "--legacy", str(dump))
    assert done.returncode == 2
    assert str(dump) in done.stderr
    assert 'type "nosuchtype" does not exist' in done.stderr


def test_dsn_that_refuses_connections_hides_its_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        done = _run("seed", "--dsn", f"postgresql://app:s3cr3t@127.0.0.1:{port}/x")
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout


@pytest.mark.usefixtures("leaves_nothing_behind")
def test_port_taken_in_the_meantime(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        # The harness picks a port that another process takes before the server binds it.
        monkeypatch.setattr(local, "free_port", lambda: taken)
        with pytest.raises(ClusterStartError) as failure:
            start_local_cluster()
    message = str(failure.value)
    assert f"port {taken} was taken by another process" in message
    assert "run again" in message
    assert "could not" in failure.value.log_tail or "in use" in failure.value.log_tail
