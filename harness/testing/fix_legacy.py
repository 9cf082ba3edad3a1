"""Fresh databases for each scenario: empty ones, and copies of the legacy database.

The legacy database is seeded once per session into a template; each scenario
clones it (``CREATE DATABASE … TEMPLATE``), which takes a fraction of a second
instead of a new seed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cluster import Cluster, Endpoints
from harness.connections import Conn
from harness.databases import create_database, drop_database
from harness.testing.fix_cluster import connect

__all__ = [
    "LegacyDatabase",
    "empty_dsn",
    "legacy_counts",
    "legacy_database",
    "legacy_template_name",
    "primary_conn",
    "replica_conn",
    "writer_conn",
]

TEMPLATE = "legacy_template"
_names = itertools.count(1)


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@dataclass(frozen=True)
class LegacyDatabase:
    """A scenario's own copy of the legacy database, on primary and replica."""

    name: str
    endpoints: Endpoints


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgcutover", "pgcutover cluster")
    group.addoption("--pg-scale", type=int, default=1, help="legacy data scale (default 1)")
    group.addoption(
        "--pg-legacy", default=None, help="seed from this SQL dump or pg_dump archive instead"
    )


@pytest.fixture(scope="session")
def legacy_template_name(request: pytest.FixtureRequest, cluster: Cluster) -> str:
    """The name of the seeded legacy database every scenario copies; seeded once per session."""
    from harness.legacy import seed

    legacy = request.config.getoption("--pg-legacy")
    dsn = create_database(cluster.endpoints.primary, TEMPLATE)
    seed(
        dsn,
        scale=request.config.getoption("--pg-scale"),
        legacy=Path(legacy) if legacy else None,
        pg_bin=None,
        create_roles=True,
    )
    cluster.wait_for_replica()
    return TEMPLATE


@pytest.fixture(scope="session")
def legacy_counts(request: pytest.FixtureRequest) -> dict[str, int]:
    """Rows per table of the built-in legacy database at this session's ``--pg-scale``."""
    from harness.legacy import counts

    if request.config.getoption("--pg-legacy"):
        pytest.skip("the counts are the built-in legacy database's; --pg-legacy replaced it")
    return counts(scale=request.config.getoption("--pg-scale"))


@pytest.fixture
def legacy_database(cluster: Cluster, legacy_template_name: str) -> Iterator[LegacyDatabase]:
    """A fresh copy of the legacy database, already replayed on the replica."""
    name = fresh_name("legacy")
    create_database(cluster.endpoints.primary, name, template=legacy_template_name)
    cluster.wait_for_replica()
    try:
        yield LegacyDatabase(name=name, endpoints=cluster.endpoints.for_database(name))
    finally:
        drop_database(cluster.endpoints.primary, name)


@pytest.fixture
def empty_dsn(cluster: Cluster) -> Iterator[str]:
    """DSN of a new, empty database on the primary."""
    name = fresh_name("empty")
    dsn = create_database(cluster.endpoints.primary, name)
    try:
        yield dsn
    finally:
        drop_database(cluster.endpoints.primary, name)


@pytest.fixture
def primary_conn(legacy_database: LegacyDatabase) -> Iterator[Conn]:
    """An autocommit connection to ``legacy_database`` on the primary."""
    with connect(legacy_database.endpoints.primary) as conn:
        yield conn


@pytest.fixture
def replica_conn(legacy_database: LegacyDatabase) -> Iterator[Conn]:
    """An autocommit connection to ``legacy_database`` on the replica (read-only)."""
    with connect(legacy_database.endpoints.replica) as conn:
        yield conn


@pytest.fixture
def writer_conn(legacy_database: LegacyDatabase) -> Iterator[Conn]:
    """Through PgBouncer's writer (transaction pooling): no server-side prepared statements."""
    with connect(legacy_database.endpoints.writer, prepare_threshold=None) as conn:
        yield conn
