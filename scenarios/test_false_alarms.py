"""No false alarm on a correct plan for a database with the features that once caused one.

A read-only role "could INSERT" into a view nobody can write to (the probe counted
SQLSTATE 55000 as allowed); a table rule's role needed USAGE on its schema that no
schema rule listed; a body building SQL at run time was silently skipped. The
rental store (``fixtures/rental_store``) has those features and more; its correct
plan must pass, and a function unpinned must be caught even though the name it
depends on sits inside an ``EXECUTE`` string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from planting import Edit, failed, planted, run_gate

from harness.cluster import Cluster, Endpoints
from harness.databases import create_database, drop_database
from harness.legacy import seed
from harness.testing.fix_legacy import fresh_name

STORE = Path(__file__).resolve().parent / "fixtures" / "rental_store"


@pytest.fixture(scope="module")
def store_template_name(cluster: Cluster) -> Iterator[str]:
    name = fresh_name("rental_store_template")
    dsn = create_database(cluster.endpoints.primary, name)
    try:
        seed(dsn, legacy=STORE / "plan" / "legacy.sql")
        yield name
    finally:
        drop_database(cluster.endpoints.primary, name)


@pytest.fixture
def store_endpoints(cluster: Cluster, store_template_name: str) -> Iterator[Endpoints]:
    name = fresh_name("rental_store")
    create_database(cluster.endpoints.primary, name, template=store_template_name)
    cluster.wait_for_replica()
    try:
        yield cluster.endpoints.for_database(name)
    finally:
        drop_database(cluster.endpoints.primary, name)


def test_correct_plan_on_views_partitions_and_dynamic_sql_passes(
    cluster: Cluster, store_endpoints: Endpoints, tmp_path: Path
) -> None:
    report = run_gate(STORE / "plan", cluster, store_endpoints, tmp_path)
    assert failed(report) == {}
    checks = {c.name: c for c in report.checks}
    # The views no one can write through were not counted as "can INSERT".
    assert "did not apply (views no one can write through" in checks["privileges.tried"].reason
    # What could not be read is said, not passed over.
    reason = checks["dependencies.resolve"].reason
    assert "1 body could not be read in full" in reason
    assert "public.rewards_report(" in reason
    assert "EXECUTE tmpSQL builds its statement at run time" in reason


def test_unpinned_function_is_caught_through_its_execute_string(
    cluster: Cluster, store_endpoints: Endpoints, tmp_path: Path
) -> None:
    plan = planted(
        STORE / "plan",
        tmp_path / "plan",
        (
            Edit(
                "up/002_move.sql",
                "ALTER FUNCTION public.rewards_report(int, numeric) "
                "SET search_path = store, public;",
                "",
            ),
            Edit("plan.toml", None, '\n[dependencies]\ncompatibility_views = "fail"\n'),
        ),
    )
    found = failed(run_gate(plan, cluster, store_endpoints, tmp_path))
    assert set(found) == {"dependencies.resolve"}, found
    assert any(
        "public.rewards_report(" in d
        and "reaches `customer` only through the compatibility view public.customer" in d
        for d in found["dependencies.resolve"]
    ), found
