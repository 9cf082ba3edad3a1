"""``--clone-from``: the gate's primary is a physical copy of a server the user names.

The source here is a cluster of its own (a primary and a streaming replica holding the
retailer's database), started beside the harness's. The gate copies the source's
*replica*, passes ``plans/kct``, and leaves the source exactly as it was: the same
``pg_dump``, byte for byte, and not one byte more WAL on its primary or replayed on
its replica. Every bad input exits 2 before any server of the harness starts, and a
copy interrupted halfway leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from harness.cluster.binaries import find_binaries
from harness.cluster.local import LocalCluster, default_base_dir
from harness.cluster.processes import free_port, processes_under, stop_processes_under
from harness.cluster.versions import parse_version
from harness.connections import connect
from harness.dsn import with_database, with_login
from harness.testing.clone_source import (
    make_copyable,
    seeded_source,
    source_state,
    wait_until_quiet,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KCT = ROOT / "plans" / "kct"
HARNESS = [sys.executable, "-m", "harness.cli"]
# The built-in database at scale 1: 3,369 customers.
CUSTOMERS = 3369


@dataclass(frozen=True)
class Source:
    cluster: LocalCluster
    primary: str  # the source's own DSNs, to the database "shop"
    replica: str


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    """A source cluster, seeded, with a role that may log in but not copy it, made ready
    to be copied and idle (:func:`make_copyable`)."""
    with seeded_source(scale=1) as cluster:
        with connect(with_database(cluster.endpoints.primary, "postgres")) as conn:
            conn.execute("CREATE ROLE reporting LOGIN")
        make_copyable(cluster)
        assert cluster.endpoints.replica is not None
        yield Source(cluster, cluster.endpoints.primary, cluster.endpoints.replica)


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """Where the harness's clusters go (PGCUTOVER_TMPDIR), to see what is left there."""
    base = Path(tempfile.mkdtemp(prefix="clone-gate-", dir=default_base_dir()))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _left_in(base: Path) -> tuple[list[str], dict[int, list[str]]]:
    dirs = [p.name for p in base.iterdir() if not p.name.startswith("pgcutover-initdb")]
    return dirs, processes_under(base)


def _harness(
    *args: str | Path, base: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARNESS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PGCUTOVER_TMPDIR": str(base), **(env or {})},
    )


# -- bad input: exit 2 before anything starts -------------------------------------------
def _stand_in_binaries(directory: Path) -> Path:
    """This machine's binaries, except that ``postgres --version`` names the next major:
    the one way to meet a version mismatch with a single PostgreSQL installed."""
    real = find_binaries()
    version = parse_version(real.version())
    assert version is not None
    directory.mkdir()
    for program in real.bindir.iterdir():
        (directory / program.name).symlink_to(program)
    (directory / "postgres").unlink()
    fake = directory / "postgres"
    fake.write_text(f'#!/bin/sh\necho "postgres (PostgreSQL) {version[0] + 1}.0"\n')
    fake.chmod(0o755)
    return directory


def _plan_naming(database: str, directory: Path) -> Path:
    plan = shutil.copytree(KCT, directory / "kct")
    toml = plan / "plan.toml"
    toml.write_text(f'database = "{database}"\n' + toml.read_text())
    return plan


@pytest.mark.parametrize(
    "case",
    [
        "unreachable",
        "other_major",
        "no_replication",
        "no_room",
        "no_database",
        "plan_database_missing",
        "docker",
        "external",
    ],
)
def test_bad_input_exits_2_naming_cause_and_fix_before_anything_starts(
    source: Source, base_dir: Path, tmp_path: Path, case: str
) -> None:
    dsn, extra, cleanup = source.replica, [], None
    plan: Path = KCT
    if case == "unreachable":
        dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/shop"
        expected = ["cannot be reached", "Connection refused", "that the server is up"]
    elif case == "other_major":
        extra = ["--pg-bin", str(_stand_in_binaries(tmp_path / "bin"))]
        expected = ["a physical copy starts only on the same major version", "give --pg-bin"]
    elif case == "no_replication":
        dsn = with_login(source.replica, user="reporting", password=None)
        expected = ["role reporting may not copy", "ALTER ROLE reporting REPLICATION"]
    elif case == "no_room":
        # pg_database_size adds up the sizes of a database's files: a sparse one makes the
        # source look larger than any disk here without taking a byte of it.
        with connect(source.replica) as conn:
            row = conn.execute("SELECT oid FROM pg_database WHERE datname = 'shop'").fetchone()
        assert row is not None
        sparse = source.cluster.workdir / "replica" / "base" / str(row[0]) / "pgcutover-sparse"
        with sparse.open("wb") as fh:
            fh.truncate(1 << 43)  # 8 TiB: within any file system's largest file
        cleanup = sparse
        expected = ["needs about", "GB are free", "set PGCUTOVER_TMPDIR"]
    elif case == "no_database":
        dsn = with_database(source.replica, "warehouse")
        expected = ['database "warehouse" does not exist', "name a database the source has"]
    elif case == "plan_database_missing":
        plan = _plan_naming("warehouse", tmp_path)
        expected = ["database 'warehouse' is not on the source", "fix database = in plan.toml"]
    else:
        extra = ["--provider", case]
        expected = [f"the {case} provider", "run with --provider local"]
    try:
        done = _harness(
            "gate", "--plan", plan, "--clone-from", dsn, "--reports", tmp_path / "reports",
            *extra, base=base_dir,
        )  # fmt: skip
    finally:
        if cleanup is not None:
            cleanup.unlink()
    assert done.returncode == 2, done.stderr
    for words in expected:
        assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _left_in(base_dir) == ([], {}), "a directory or a server was left behind"
    assert not (tmp_path / "reports").exists()


def test_an_interrupted_copy_leaves_nothing_behind(source: Source, base_dir: Path) -> None:
    """Ctrl-C while pg_basebackup runs: its processes end, its directory goes."""
    with subprocess.Popen(
        [*HARNESS, "gate", "--plan", str(KCT), "--clone-from", source.replica],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A copy slowed to a crawl, so that the interrupt lands in the middle of it.
        env={**os.environ, "PGCUTOVER_TMPDIR": str(base_dir), "PGCUTOVER_CLONE_MAX_RATE": "32k"},
    ) as proc:
        deadline = time.monotonic() + 60
        while not any("pg_basebackup" in argv[0] for argv in processes_under(base_dir).values()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "pg_basebackup never started"
            time.sleep(0.05)
        time.sleep(0.5)  # files are arriving
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # not left to Popen's exit, which would wait for the throttled copy to end
            proc.kill()
            stop_processes_under(base_dir)
            raise
    assert proc.returncode == 130, err
    assert "pg_basebackup: copying the source's standby" in err
    assert _left_in(base_dir) == ([], {})


def test_up_serves_the_copy_of_the_source(source: Source, base_dir: Path) -> None:
    """``harness up --clone-from``: the source's database, unloaded, behind the harness's
    own primary, replica and PgBouncers."""
    with subprocess.Popen(
        [*HARNESS, "up", "--clone-from", source.replica],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGCUTOVER_TMPDIR": str(base_dir)},
    ) as proc:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        while len(env) < 4:
            line = proc.stdout.readline()
            assert line, f"harness up ended early: {proc.communicate()[1]}"
            key, _, value = line.strip().partition("=")
            env[key] = value
        for key in ("PRIMARY_URL", "REPLICA_URL"):
            with psycopg.connect(env[key], autocommit=True) as conn:
                row = conn.execute(
                    "SELECT current_database(), pg_is_in_recovery(), count(*) FROM customers"
                ).fetchone()
            assert row == ("shop", key == "REPLICA_URL", CUSTOMERS)
        with psycopg.connect(env["PRIMARY_URL"], autocommit=True) as conn:
            conninfo = conn.execute("SHOW primary_conninfo").fetchone()
            assert conninfo == ("",), "the copy still follows the source"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "seeding" not in err
    assert _left_in(base_dir) == ([], {})


def test_gate_of_a_standby_copy_is_safe_and_the_source_unchanged(
    source: Source, base_dir: Path, tmp_path: Path
) -> None:
    wait_until_quiet(source.primary, source.replica)
    before = source_state(source.primary, source.replica)
    done = _harness(
        "gate", "--plan", KCT, "--clone-from", source.replica, "--reports", tmp_path,
        "--traffic-clients", "4", base=base_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan 'kct': SAFE" in done.stdout
    assert "is a standby" in done.stderr
    assert "seeding" not in done.stderr
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["clone"]["source_role"] == "standby"
    assert report["clone"]["source_wal_written"] is False
    assert "clone" in [p["name"] for p in report["phases"]]
    after = source_state(source.primary, source.replica)
    assert after[0] == before[0], "the source's database changed"
    assert after[1] == before[1], "the source's primary wrote WAL, or its replica replayed some"
    assert _left_in(base_dir) == ([], {})
