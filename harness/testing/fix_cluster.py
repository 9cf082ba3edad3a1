"""The session-wide cluster fixture and its command-line options.

Option names carry a ``pg`` prefix: Locust installs a pytest plugin that
already defines ``--host`` and a ``session`` fixture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness.cluster import PROVIDERS, Cluster, Poolers, start_cluster
from harness.cluster.local import LocalCluster, start_local_cluster
from harness.connections import Conn
from harness.connections import connect as _connect
from harness.errors import HarnessError

__all__ = ["CLUSTER_POOLERS", "cluster", "in_ci", "missing_capability", "own_local_cluster"]

#: The PgBouncers' settings for the session's cluster: a plan's ``[pgbouncer]``, set
#: by the plugin that loads the plan; unset, the defaults.
CLUSTER_POOLERS = pytest.StashKey[Poolers]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_capability(reason: str) -> None:
    """Skip locally, fail in CI: there a missing dependency is a broken pipeline."""
    if in_ci():
        pytest.fail(f"CI=true and a required capability is missing: {reason}")
    pytest.skip(reason)


@contextmanager
def own_local_cluster(**options: Any) -> Iterator[LocalCluster]:
    """A local cluster of a scenario's own (``start_local_cluster``'s ``options``),
    stopped after it; one that cannot start is a missing capability."""
    try:
        started = start_local_cluster(**options)
    except HarnessError as exc:
        missing_capability(f"cannot start a local cluster: {exc}")
        raise  # unreachable: missing_capability always raises
    with started:
        yield started


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, beside the fixtures they describe, so --strict-markers knows them
    # wherever this plugin is loaded.
    config.addinivalue_line(
        "markers", "slow: takes more than a few seconds (a whole gate run, property tests)"
    )
    config.addinivalue_line(
        "markers",
        "docker: needs a Docker engine; skips with the reason when none answers, fails in CI",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgcutover", "pgcutover cluster")
    group.addoption(
        "--pg-provider",
        choices=PROVIDERS,
        default=os.environ.get("PGCUTOVER_PROVIDER", "local"),
        help="where the primary and replica run (default: local binaries)",
    )
    group.addoption("--pg-bin", default=None, help="directory holding initdb and pg_ctl")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A primary with a streaming replica and PgBouncer, for the whole test session.

    Its PgBouncers run with the ``--pg-plan`` plan's ``[pgbouncer]`` settings, if any.
    """
    provider = request.config.getoption("--pg-provider")
    try:
        started = start_cluster(
            provider,
            pg_bin=request.config.getoption("--pg-bin"),
            poolers=request.config.stash.get(CLUSTER_POOLERS, None),
        )
    except HarnessError as exc:
        missing_capability(f"cannot start the {provider} cluster: {exc}")
        raise  # unreachable: missing_capability always raises
    try:
        yield started
    finally:
        started.stop()


def pytest_report_header(config: pytest.Config) -> str:
    provider = config.getoption("--pg-provider")
    if provider != "local":
        return f"pgcutover: provider={provider}"
    try:
        from harness.cluster.binaries import find_binaries

        version = find_binaries(config.getoption("--pg-bin")).version()
    except HarnessError as exc:
        version = f"not found ({exc})"
    return f"pgcutover: provider=local, {version}"


def connect(dsn: str, *, prepare_threshold: int | None = 5) -> Conn:
    """An autocommit connection; ``prepare_threshold=None`` for PgBouncer's transaction pool."""
    return _connect(dsn, timeout=5, prepare_threshold=prepare_threshold)
