"""Which database a clone gates, and which providers can clone: decided from the input alone."""

from __future__ import annotations

import pytest

from harness.cluster import start_cluster
from harness.cluster.clone import CloneSource, gated_database, refuse_provider
from harness.errors import UsageError

DSN = "postgresql://replicator:s3cret@staging-replica:5432/shop"


def test_the_plan_names_the_database_else_the_dsn() -> None:
    assert gated_database(DSN, None) == "shop"
    assert gated_database(DSN, "shop_production") == "shop_production"
    assert gated_database("host=staging dbname=orders", None) == "orders"


def test_a_database_named_nowhere_is_refused_with_how_to_name_it() -> None:
    with pytest.raises(UsageError, match="names no database and the plan names none") as caught:
        gated_database("postgresql://replicator:s3cret@staging-replica:5432", None)
    assert "s3cret" not in str(caught.value)


def test_a_name_the_harness_cannot_carry_is_refused() -> None:
    with pytest.raises(UsageError, match="characters the harness's connection strings"):
        gated_database("host=staging dbname='shop prod'", None)


def _source(*, standby: bool, cluster_bytes: int, database_bytes: int) -> CloneSource:
    return CloneSource(
        dsn=DSN,
        database="shop",
        standby=standby,
        version="15.8",
        superuser="postgres",
        cluster_bytes=cluster_bytes,
        database_bytes=database_bytes,
    )


@pytest.mark.parametrize("provider", ["docker", "external"])
def test_only_the_local_provider_clones(provider: str) -> None:
    with pytest.raises(UsageError, match=f"the {provider} provider .*--provider local"):
        refuse_provider(provider)
    refuse_provider("local")


def test_start_cluster_refuses_a_clone_for_another_provider_before_starting_it() -> None:
    source = _source(standby=True, cluster_bytes=1, database_bytes=1)
    with pytest.raises(UsageError, match="local provider only"):
        start_cluster("external", clone=source)


def test_the_report_says_whether_the_source_wrote_and_hides_the_password() -> None:
    source = _source(standby=False, cluster_bytes=10, database_bytes=5)
    report = source.to_json()
    assert report["source_role"] == "primary"
    assert report["source_wal_written"] is True
    assert "s3cret" not in str(report)
