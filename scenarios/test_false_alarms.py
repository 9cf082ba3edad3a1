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
from planting import Edit, copy_of, failed, planted, run_gate, seeded_template

from harness.cluster import Cluster, Endpoints

STORE = Path(__file__).resolve().parent / "fixtures" / "rental_store"


@pytest.fixture(scope="module")
def store_template_name(cluster: Cluster) -> Iterator[str]:
    with seeded_template(cluster, STORE / "plan" / "legacy.sql", prefix="rental_store") as name:
        yield name


@pytest.fixture
def store_endpoints(cluster: Cluster, store_template_name: str) -> Iterator[Endpoints]:
    with copy_of(cluster, store_template_name, prefix="rental_store") as endpoints:
        yield endpoints


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
