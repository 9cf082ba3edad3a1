"""A cluster that asks every TCP client for TLS and SCRAM-SHA-256, as a hosted database does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.cluster.local import LocalCluster
from harness.testing.fix_cluster import own_local_cluster


@pytest.fixture(scope="module", name="hosted")
def hosted_cluster() -> Iterator[LocalCluster]:
    with own_local_cluster(dbname="shop", tls=True) as cluster:
        yield cluster
