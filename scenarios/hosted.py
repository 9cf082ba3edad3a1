"""A cluster that asks every TCP client for TLS and SCRAM-SHA-256, as a hosted database does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cluster.local import LocalCluster, start_local_cluster
from harness.errors import HarnessError
from harness.testing.fix_cluster import missing_capability


@pytest.fixture(scope="module", name="hosted")
def hosted_cluster() -> Iterator[LocalCluster]:
    try:
        cluster = start_local_cluster(dbname="shop", tls=True)
    except HarnessError as exc:
        missing_capability(f"cannot start a local cluster with TLS: {exc}")
        raise
    with cluster:
        yield cluster
