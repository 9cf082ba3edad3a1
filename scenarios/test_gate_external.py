"""The gate on a server someone else runs never touches a database it did not create.

A staging server holds real databases. A plan's SQL may name one of them
(``ALTER DATABASE kct_production …``): the gate must refuse rather than drop or
change it, and a plan that names none must run in a database of its own and
leave every other database as it found it, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.cluster.binaries import find_binaries
from harness.databases import create_database
from harness.dsn import with_database
from harness.testing.fix_cluster import connect, own_local_cluster

PLANS = Path(__file__).resolve().parent.parent / "plans"

pytestmark = pytest.mark.slow


@pytest.fixture
def staging() -> Iterator[Cluster]:
    """A server of its own: plans create cluster-wide roles that other scenarios must not see."""
    with own_local_cluster() as cluster:
        yield cluster


def _someones_database(cluster: Cluster, name: str) -> str:
    dsn = create_database(cluster.endpoints.primary, name)
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 500) g")
        conn.execute("ALTER DATABASE " + name + " SET work_mem = '7MB'")
    return dsn


def _dump(dsn: str) -> bytes:
    """Schema, data and the database's own settings, as pg_dump writes them."""
    out = subprocess.run(
        [find_binaries().path("pg_dump"), "--create", "-d", dsn],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    # pg_dump 15.14+ fences its script with \restrict KEY lines, KEY new on every run.
    return b"\n".join(line for line in out.splitlines() if not line.startswith(b"\\"))


def _databases(cluster: Cluster) -> set[str]:
    with connect(cluster.endpoints.primary) as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database")}


def _roles(cluster: Cluster) -> set[str]:
    with connect(cluster.endpoints.primary) as conn:
        return {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}


def _gate(plan: str, cluster: Cluster, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
    env["DATABASE_URL"] = with_database(cluster.endpoints.primary, "postgres")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--provider", "external",
         "--plan", str(PLANS / plan)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False, env=env,
    )  # fmt: skip


def test_plan_naming_an_existing_database_is_refused_and_it_survives(
    staging: Cluster, tmp_path: Path
) -> None:
    dsn = _someones_database(staging, "kct_production")
    before = _dump(dsn)

    done = _gate("as-written", staging, tmp_path)

    assert done.returncode == 2, done.stderr
    assert "'kct_production' already exists" in done.stderr
    assert "never changes or drops" in done.stderr
    assert _dump(dsn) == before


def test_plan_without_a_database_runs_in_its_own_and_leaves_the_others(
    staging: Cluster, tmp_path: Path
) -> None:
    kept = {name: _someones_database(staging, name) for name in ("pgcutover_gate", "shop")}
    before = {name: _dump(dsn) for name, dsn in kept.items()}
    databases, roles = _databases(staging), _roles(staging)

    done = _gate("kct", staging, tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert {name: _dump(dsn) for name, dsn in kept.items()} == before
    assert _databases(staging) == databases, "the gate left a database behind"
    assert _roles(staging) == roles, "the gate left a role behind"


def test_a_role_of_the_workload_that_exists_is_never_given_a_password(
    staging: Cluster, tmp_path: Path
) -> None:
    """Someone logs in as kct_app on staging today: a password of ours would lock them out."""
    with connect(staging.endpoints.primary) as conn:
        conn.execute("CREATE ROLE kct_app LOGIN PASSWORD 'theirs'")
        before = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'kct_app'")
        password = before.fetchone()
    databases = _databases(staging)

    done = _gate("kct", staging, tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "kct_app, which already exist" in done.stderr
    assert "--no-traffic" in done.stderr
    with connect(staging.endpoints.primary) as conn:
        after = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'kct_app'")
        assert after.fetchone() == password
    assert _databases(staging) == databases


def test_a_server_alone_lists_the_checks_it_could_not_run(staging: Cluster, tmp_path: Path) -> None:
    """No replica, no pooler, no traffic, no login of the plan's roles: each check left out
    is listed, and --require-all fails the gate for them, as CI needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
    env["DATABASE_URL"] = with_database(staging.endpoints.primary, "postgres")
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--provider", "external",
         "--plan", str(PLANS / "kct"), "--no-traffic", "--require-all"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False, env=env,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    expected = [
        "privileges.logged_in",
        "replica.matches_primary",
        "traffic.no_errors",
        "traffic.stall",
        "traffic.writes_kept",
        "traffic.old_connections_used",
        "rollback.exact_on_replica",
        "pooler.sessions_exercised",
    ]
    gate = json.loads((tmp_path / "reports/gate.json").read_text())
    assert sorted(gate["not_run"]) == sorted(expected)
    assert gate["failed"] == [], "nothing ran and failed: only the checks not run fail it"
    assert gate["verdict"] == "unsafe"
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIP ")]
    assert sorted(line.split(":")[0].removeprefix("SKIP ") for line in skipped) == sorted(expected)
    assert "--no-traffic" in next(line for line in skipped if "traffic.stall" in line)
    assert f"plan 'kct': NOT SAFE ({len(expected)} checks not run, and --require-all fails" in (
        done.stdout
    )
    junit = ET.parse(tmp_path / "reports/junit.xml").getroot().find("testsuite")
    assert junit is not None
    assert junit.get("failures") == str(len(expected))
