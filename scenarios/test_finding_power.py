"""Finding power as a property: on any small legacy schema, the gate accepts a correct plan
and rejects each kind of defect by the check the defect belongs to.

Hypothesis draws a schema (tables with keys and foreign keys, a partitioned table,
a view, a function naming a table, possibly through ``EXECUTE format()``, sequences,
rows; names that need quoting among them) and writes the plan that moves it into
a new schema. The gate must accept that plan with no failure, and reject the same
plan with one defect from the catalogue, failing exactly the check it names. On a
failure hypothesis prints the example and the seed to reproduce it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from planting import failed, modes_for, run_gate
from schema_strategies import (
    DEFECTS,
    FIXED_SCHEMA,
    LegacySchema,
    PlanDefect,
    legacy_schemas,
    write_plan,
)
from strategies import database_settings

from harness.cluster import Cluster
from harness.databases import create_database, drop_database
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import fresh_name

pytestmark = pytest.mark.slow

EXAMPLES = 4


@pytest.fixture(scope="module")
def databases(cluster: Cluster) -> Iterator[list[str]]:
    """Names of the databases an example made, dropped when the module is done."""
    made: list[str] = []
    yield made
    for name in made:
        drop_database(cluster.endpoints.primary, name)


def _seeded(cluster: Cluster, schema: LegacySchema, made: list[str]) -> str:
    name = fresh_name("finding_power")
    dsn = create_database(cluster.endpoints.primary, name)
    made.append(name)
    with connect(dsn) as conn, conn.transaction():
        conn.execute("SET LOCAL search_path = public")
        conn.execute(schema.sql.encode())
    cluster.wait_for_replica()
    return name


@given(schema=legacy_schemas(), defect=st.sampled_from(DEFECTS))
@database_settings(max_examples=EXAMPLES)
def test_correct_plan_passes_and_each_defect_fails_its_check(
    cluster: Cluster, databases: list[str], schema: LegacySchema, defect: PlanDefect
) -> None:
    note(schema.sql)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        correct = write_plan(schema, work / "correct", defect=None)
        name = _seeded(cluster, schema, databases)
        report = run_gate(correct, cluster, cluster.endpoints.for_database(name), work)
        assert failed(report) == {}, "the correct plan was rejected"

        broken = write_plan(schema, work / "broken", defect=defect)
        name = _seeded(cluster, schema, databases)
        found = failed(run_gate(broken, cluster, cluster.endpoints.for_database(name), work))
        assert set(found) == {defect.check}, f"{defect.name}: {found}"


@pytest.mark.parametrize(
    ("defect", "mode"),
    [
        pytest.param(d, m, id=f"{d.name}-{m.replace(' ', '-')}")
        for d in DEFECTS
        for m in modes_for(d.check)
    ],
)
def test_each_defect_class_fails_its_check_on_one_fixed_schema(
    cluster: Cluster, databases: list[str], defect: PlanDefect, mode: str, tmp_path: Path
) -> None:
    """The property draws defects at random; here every class is shown at every run,
    without the traffic, and in the default mode (the application's traffic on: its
    requests may fail too) where the traffic can change what its check sees."""
    broken = write_plan(FIXED_SCHEMA, tmp_path / "broken", defect=defect)
    name = _seeded(cluster, FIXED_SCHEMA, databases)
    endpoints = cluster.endpoints.for_database(name)
    found = failed(run_gate(broken, cluster, endpoints, tmp_path, traffic=mode == "traffic"))
    assert defect.check in found, f"{defect.name}: {found}"
    assert mode == "traffic" or set(found) == {defect.check}, f"{defect.name}: {found}"
