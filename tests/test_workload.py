"""The workload format and the traffic's verdicts, without a database.

A workload is written by hand: each mistake must stop the gate before any step,
naming the query. The verdicts must hold on a loaded machine: a step is judged
against the same workload measured just before the migration, in the same run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import PlanError
from harness.plan import load_plan
from harness.plan.workload import StallLimits, Workload, WorkloadQuery, simple_workload
from harness.traffic.checks import check_no_errors, check_stall
from harness.traffic.clients import BEFORE, Request, Timeline

PLANS = Path(__file__).resolve().parent.parent / "plans"

HEAD = """\
name = "tiny"
[layout]
roles = ["app", "reports"]
"""


def _load(tmp_path: Path, workload: str) -> object:
    directory = tmp_path / "plan"
    (directory / "up").mkdir(parents=True)
    (directory / "down").mkdir()
    (directory / "up" / "001_a.sql").write_text("CREATE SCHEMA s;\n")
    (directory / "down" / "001_a.sql").write_text("DROP SCHEMA s;\n")
    (directory / "plan.toml").write_text(HEAD + textwrap.dedent(workload))
    return load_plan(directory)


def test_shipped_plans_describe_the_shop() -> None:
    for name in ("kct", "as-written"):
        workload = load_plan(PLANS / name).workload
        assert workload is not None
        assert workload.roles == ("kct_app", "kct_readonly")
        kinds = {q.kind for q in workload.queries}
        assert kinds == {"read", "write"}
        writes = " ".join(" ".join(q.sql) for q in workload.queries if q.kind == "write")
        for verb in ("INSERT", "UPDATE", "DELETE"):
            assert verb in writes
        assert all(q.verify for q in workload.queries if q.kind == "write")


def test_a_plan_without_workload_gets_the_simple_case() -> None:
    workload = simple_workload(["public.orders", "public.products"], ("SELECT 1",))
    assert not workload.declared
    assert [q.sql[0] for q in workload.queries] == [
        'SELECT * FROM "orders" LIMIT 1',
        'SELECT * FROM "products" LIMIT 1',
        "SELECT 1",
    ]
    assert {q.kind for q in workload.queries} == {"read"}
    assert workload.roles == ()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('role = "root"\nkind = "read"\nsql = "SELECT 1"', "role 'root' is not one of the plan's"),
        (
            'role = "app"\nkind = "read"\nsql = "UPDATE t SET a = 1"',
            "marked read, but `UPDATE t SET a = 1` writes",
        ),
        (
            'role = "app"\nkind = "read"\nsql = "WITH x AS (SELECT 1) DELETE FROM t"',
            "marked read",
        ),
        ('role = "app"\nkind = "write"\nsql = "DELETE FROM t"', "a write needs verify"),
        ('role = "app"\nkind = "fetch"\nsql = "SELECT 1"', "kind = 'fetch'; say read or write"),
        ('role = "app"\nkind = "read"\nweight = 0\nsql = "SELECT 1"', "weight must be"),
        ('role = "app"\nkind = "read"\nsql = []', "non-empty list of statements"),
        ('role = "app"\nkind = "read"\nsql = "SELECT 1"\nhow = 1', "unknown key(s) how"),
    ],
)
def test_bad_query_is_refused_naming_it(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        _load(tmp_path, f'[[workload.queries]]\nname = "lookup"\n{query}\n')
    assert "(lookup)" in str(caught.value)
    assert message in str(caught.value)


def test_durations_need_units_and_names_are_unique(tmp_path: Path) -> None:
    query = '[[workload.queries]]\nname = "q"\nrole = "app"\nkind = "read"\nsql = "SELECT 1"\n'
    with pytest.raises(PlanError, match="duration with a unit"):
        _load(tmp_path / "a", "[workload]\nthink_time = 20\n" + query)
    with pytest.raises(PlanError, match="used twice"):
        _load(tmp_path / "b", query + query)
    plan = _load(
        tmp_path / "c", '[workload]\nclients = 4\n[workload.stall]\np99 = "100ms"\n' + query
    )
    workload = plan.workload  # type: ignore[attr-defined]
    assert workload.clients == 4
    assert workload.stall.p99 == pytest.approx(0.1)


def _requests(timeline: Timeline, spans: list[tuple[float, float]]) -> list[Request]:
    return [
        Request(
            query="q", role="app", path="reader", kind="read", client=0, start=s, end=e, ok=True
        )
        for s, e in spans
    ]


def _timeline(*marks: tuple[float, str]) -> Timeline:
    timeline = Timeline()
    timeline.times, timeline.labels = [0.0], [BEFORE]
    for t, label in marks:
        timeline.times.append(t)
        timeline.labels.append(label)
        timeline.steps.add(label)
    return timeline


WORKLOAD = Workload(
    queries=(WorkloadQuery(name="q", role="app", kind="read", weight=1, sql=("SELECT 1",)),),
    stall=StallLimits(p99=0.25, max=1.0, ratio=4.0),
)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(base=st.floats(min_value=0.001, max_value=0.5), factor=st.floats(min_value=0.5, max_value=3))
def test_a_step_as_slow_as_a_loaded_baseline_is_no_stall(base: float, factor: float) -> None:
    """A machine that is slow before the migration is not a stall during it."""
    timeline = _timeline((10.0, "up/001_a.sql"))
    spans = [(i * 0.1, i * 0.1 + base) for i in range(50)]
    spans += [(10.0 + i * 0.1, 10.0 + i * 0.1 + base * factor) for i in range(50)]
    check = check_stall(_requests(timeline, spans), timeline, WORKLOAD, {})
    assert check.verdict == "pass", check.details


def test_a_request_held_by_a_step_is_that_steps_stall() -> None:
    timeline = _timeline((10.0, "up/001_a.sql"), (13.0, "up/002_b.sql"))
    spans = [(i * 0.1, i * 0.1 + 0.02) for i in range(50)]
    # Started just before the step, held for its three seconds, ended just after it.
    spans += [(9.99, 13.01), (13.1, 13.12)]
    check = check_stall(_requests(timeline, spans), timeline, WORKLOAD, {})
    assert check.verdict == "fail"
    assert len(check.details) == 1
    assert check.details[0].startswith("up/001_a.sql: ")


def test_failures_are_named_from_the_step_they_start_at() -> None:
    timeline = _timeline((10.0, "up/003_move.sql"), (11.0, "up/004_path.sql"))
    requests = _requests(timeline, [(1.0, 1.01), (10.5, 10.51), (11.5, 11.51)])
    for r in requests[1:]:
        r.ok, r.sqlstate, r.message = False, "42P01", 'relation "products" does not exist'
    check = check_no_errors(requests, timeline)
    assert check.verdict == "fail"
    assert check.details == (
        'q as app via PgBouncer reader: 2 failed, from up/003_move.sql on: relation "products" '
        "does not exist [SQLSTATE 42P01]",
    )


def test_failures_just_after_a_step_are_named_by_that_step() -> None:
    timeline = _timeline((10.0, "up/003_move.sql"))
    timeline.times.append(10.2)
    timeline.labels.append("after up/003_move.sql")
    timeline.owner["after up/003_move.sql"] = "up/003_move.sql"
    requests = _requests(timeline, [(10.3, 10.31)])
    requests[0].ok, requests[0].sqlstate, requests[0].message = False, "42P01", "gone"
    (detail,) = check_no_errors(requests, timeline).details
    assert "from up/003_move.sql on: gone" in detail
