"""The workload format and the traffic's verdicts, without a database.

A workload is written by hand: each mistake must stop the gate before any step,
naming the query. The verdicts must hold on a loaded machine: a step stalls the
application when a request waited on the migration's lock, not when it was slow.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import PlanError
from harness.plan import Plan, load_plan
from harness.plan.default_workload import default_workload
from harness.plan.workload import StallLimits
from harness.traffic.checks import check_no_errors
from harness.traffic.clients import BEFORE, Request, Timeline
from harness.traffic.sampler import INTERVAL, LockSampler, LockWait, overlap
from harness.traffic.stall import check_stall

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


def _unworkloaded(tmp_path: Path, *, tables: str, rules: str) -> Plan:
    directory = tmp_path / "plan"
    (directory / "up").mkdir(parents=True)
    (directory / "down").mkdir()
    (directory / "up" / "001_a.sql").write_text("CREATE SCHEMA shop;\n")
    (directory / "down" / "001_a.sql").write_text("DROP SCHEMA shop;\n")
    head = """\
        name = "tiny"
        [layout]
        schemas = ["shop", "vault"]
        roles = ["app", "reports", "dropped"]
        [rollback]
        keeps_roles = ["app", "reports"]
        [sessions]
        queries = ["SELECT count(*) FROM orders"]
        """
    toml = "\n".join([textwrap.dedent(head), "[layout.tables]", tables, rules])
    (directory / "plan.toml").write_text(toml)
    return load_plan(directory)


def _rule(role: str, on: str, allow: str = "SELECT", deny: str = "") -> str:
    denied = f'["{deny}"]' if deny else "[]"
    return f'[[privileges]]\nrole = "{role}"\non = "{on}"\nallow = ["{allow}"]\ndeny = {denied}\n'


def test_a_plan_without_workload_reads_each_table_as_a_role_its_rules_let_read_it(
    tmp_path: Path,
) -> None:
    plan = _unworkloaded(
        tmp_path,
        tables='"public.orders" = "shop"\n"public.products" = "shop"\n"public.keys" = "vault"',
        rules="".join(
            [
                _rule("app", "shop.*"),
                _rule("reports", "shop.*"),
                _rule("reports", "public.*"),  # sessions opened before still read there
                _rule("dropped", "vault.*"),  # the rollback drops it: never the login
                _rule("app", "vault.*", allow="INSERT", deny="SELECT"),
            ]
        ),
    )
    workload = default_workload(plan)
    assert not workload.declared
    assert [(q.sql[0], q.role) for q in workload.queries] == [
        ('SELECT * FROM "keys" LIMIT 1', None),  # no kept role may read vault
        ('SELECT * FROM "orders" LIMIT 1', "reports"),
        ('SELECT * FROM "products" LIMIT 1', "reports"),
        # nobody may read every table where it ends up: the harness runs it
        ("SELECT count(*) FROM orders", None),
    ]
    assert {q.kind for q in workload.queries} == {"read"}
    assert workload.roles == ("reports",)


def test_the_sessions_queries_go_to_the_widest_reader_and_reads_are_spread(
    tmp_path: Path,
) -> None:
    plan = _unworkloaded(
        tmp_path,
        tables='"public.a" = "shop"\n"public.b" = "shop"\n"public.c" = "shop"',
        rules=_rule("app", "shop.*") + _rule("reports", "shop.*") + _rule("reports", "public.a"),
    )
    roles = [q.role for q in default_workload(plan).queries]
    # a: only reports reads it in both places; b and c: spread over both roles
    assert roles == ["reports", "reports", "app", "reports"]


def test_shipped_chinook_runs_as_its_roles() -> None:
    workload = default_workload(load_plan(PLANS / "chinook"))
    assert workload.roles == ("chinook_app", "chinook_reporting")
    assert all(q.role is not None for q in workload.queries)


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
        tmp_path / "c", '[workload]\nclients = 4\n[workload.stall]\nlock_wait = "100ms"\n' + query
    )
    workload = plan.workload  # type: ignore[attr-defined]
    assert workload.clients == 4
    assert workload.stall == StallLimits(lock_wait=0.1)


def test_former_latency_bounds_still_load_and_are_named_as_ignored(tmp_path: Path) -> None:
    """A plan.toml written for the latency verdict keeps loading; its bounds no longer judge."""
    query = '[[workload.queries]]\nname = "q"\nrole = "app"\nkind = "read"\nsql = "SELECT 1"\n'
    stall = '[workload.stall]\np99 = "250ms"\nmax = "1s"\nratio = 4\n'
    workload = _load(tmp_path / "a", "[workload]\n" + stall + query).workload  # type: ignore[attr-defined]
    assert workload.stall == StallLimits(lock_wait=0.2, ignored=("max", "p99", "ratio"))
    check = check_stall([], [], limits=workload.stall)
    assert check.verdict == "pass"
    assert "max, p99, ratio no longer judge" in check.reason
    with pytest.raises(PlanError, match="lock_wait"):
        _load(tmp_path / "b", '[workload]\n[workload.stall]\nbound = "1s"\n' + query)
    with pytest.raises(PlanError, match="duration with a unit"):
        _load(tmp_path / "c", "[workload]\n[workload.stall]\nlock_wait = 200\n" + query)


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


def _wait(seconds: float, *, kind: str, step: str = "", pid: int = 7) -> LockWait:
    return LockWait(
        server="primary",
        pid=pid,
        since=f"2026-01-01 00:00:{pid:02d}",
        seconds=seconds,
        seen_at=10.5,
        phase=step or "up/001_a.sql",
        locktype="relation",
        mode="AccessShareLock",
        relation="shop.products",
        blocker_kind=kind,
        blocker="the migration" if kind == "migration" else "the autovacuum worker",
        step=step,
        statement="SELECT pg_sleep(3)",
        held="AccessExclusiveLock",
    )


LIMITS = StallLimits(lock_wait=0.2)
KINDS = ["migration", "application", "background", "replay", "other"]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    waits=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=5.0), st.sampled_from(KINDS)), max_size=8
    )
)
def test_only_waits_on_the_migration_past_the_bound_are_stalls(
    waits: list[tuple[float, str]],
) -> None:
    """Who blocked whom decides, not how long: a long wait behind autovacuum or another
    request is not the plan's, and a wait on the migration within the bound is allowed."""
    found = [
        _wait(s, kind=k, step="up/001_a.sql" if k == "migration" else "", pid=i)
        for i, (s, k) in enumerate(waits)
    ]
    check = check_stall(found, [], limits=LIMITS)
    stalled = any(k == "migration" and s > LIMITS.lock_wait for s, k in waits)
    assert check.verdict == ("fail" if stalled else "pass"), check
    assert all(d.startswith("up/001_a.sql: ") for d in check.details)


def test_a_stall_names_the_step_request_lock_table_and_statement() -> None:
    timeline = _timeline((10.0, "up/001_a.sql"), (13.0, "up/002_b.sql"))
    requests = _requests(timeline, [(9.99, 10.9)])
    requests[0].pid = 7
    waits = [
        _wait(0.65, kind="migration", step="up/001_a.sql"),
        _wait(0.1, kind="migration", step="up/002_b.sql", pid=8),
    ]
    check = check_stall(waits, requests, limits=LIMITS)
    assert check.verdict == "fail"
    assert check.details == (
        "up/001_a.sql: q (as app, via PgBouncer reader) waited 650 ms for AccessShareLock "
        "(relation lock) on shop.products, held as AccessExclusiveLock, while the step ran "
        "`SELECT pg_sleep(3)`",
    )


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


def test_a_preparing_drivers_failures_are_one_line_whatever_its_statements_are_named() -> None:
    """psycopg names each prepared statement anew (``_pg3_0``, ``_pg3_1`` …): one failure
    of a driver behind a transaction pool is one line, not one per name."""
    timeline = _timeline((10.0, "up/003_move.sql"))
    requests = _requests(timeline, [(1.0, 1.01), (2.0, 2.01), (3.0, 3.01), (10.5, 10.51)])
    failures = [
        ("26000", 'prepared statement "_pg3_0" does not exist'),
        ("26000", 'prepared statement "_pg3_7" does not exist'),
        ("08P01", 'bind message supplies 1 parameters, but prepared statement "_pg3_2" requires 3'),
        ("08P01", 'bind message supplies 2 parameters, but prepared statement "_pg3_9" requires 1'),
    ]
    for r, (sqlstate, message) in zip(requests, failures, strict=True):
        r.ok, r.sqlstate, r.message = False, sqlstate, message
    assert check_no_errors(requests, timeline).details == (
        "q as app via PgBouncer reader: 2 failed, from before the migration on: prepared "
        'statement "_pg3_…" does not exist [SQLSTATE 26000]',
        "q as app via PgBouncer reader: 2 failed, from before the migration on: bind message "
        'supplies … parameters, but prepared statement "_pg3_…" requires … [SQLSTATE 08P01]',
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


def _sampler() -> LockSampler:
    return LockSampler([], Timeline(), migration="pgcutover kct ")


def test_only_the_time_the_migration_held_the_lock_is_judged_not_its_own_queueing() -> None:
    """A request queued behind a step that itself queues behind the application waits on
    the application: how long moves with the machine, and the runner cuts it at its
    lock_timeout. The part while the step held the lock is what is judged."""
    wait = _wait(0.9, kind="migration", step="up/001_a.sql")
    wait.start = 100.0
    sampler = _sampler()
    # The step's own waits, overlapping: 0.8 s of the request's 0.9 s.
    sampler._queued["primary"] = {"a": [99.5, 100.3], "b": [100.2, 100.8]}
    assert sampler.held(wait) == pytest.approx(0.1)
    check = check_stall([wait], [], limits=LIMITS, held=sampler.held)
    assert check.verdict == "pass", check
    assert "held was 100 ms" in check.reason, check.reason
    assert "waited up to 800 ms more behind the migration while it queued" in check.reason
    sampler._queued["primary"] = {"a": [99.0, 100.5]}
    check = check_stall([wait], [], limits=LIMITS, held=sampler.held)
    assert check.verdict == "fail", check
    assert check.details[0].startswith(
        "up/001_a.sql: an application request waited 400 ms (500 ms more while it queued "
        "for a lock itself"
    ), check.details


def test_on_the_replica_a_wait_is_judged_no_longer_than_the_primary_held_the_lock() -> None:
    """A replica holds a replayed lock until it replays the commit: longer than the
    primary held it only when replay lags, which is the machine's load, not the step."""
    wait = _wait(0.9, kind="migration", step="up/001_a.sql")
    wait.server, wait.start, wait.relation_oid = "replica", 100.0, 16385
    sampler = _sampler()
    assert sampler.held(wait) == pytest.approx(INTERVAL)  # never seen held: a short hold
    sampler._holds[16385] = [[10.0, 10.6], [99.7, 99.75], [101.0, 103.0]]
    # The hold that began last before the wait ended: 50 ms seen, and a sample's gap.
    assert sampler.held(wait) == pytest.approx(0.05 + INTERVAL)
    sampler._holds[16385].insert(2, [99.8, 100.5])
    assert sampler.held(wait) == pytest.approx(0.7 + INTERVAL)
    sampler._queued["replica"] = {"startup": [100.0, 100.6]}  # the replay queued, too
    assert sampler.held(wait) == pytest.approx(0.3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seconds=st.floats(min_value=0.0, max_value=3.0),
    spans=st.lists(
        st.tuples(
            st.floats(min_value=-1.0, max_value=4.0), st.floats(min_value=0.0, max_value=2.0)
        ),
        max_size=5,
    ),
)
def test_the_covered_part_of_a_wait_is_measured_exactly(
    seconds: float, spans: list[tuple[float, float]]
) -> None:
    queued = [(s, s + length) for s, length in spans]
    # The covered part by brute force: a tenth of a millisecond grid over the wait.
    step = 0.0001
    grid = [(i + 0.5) * step for i in range(int(seconds / step))]
    brute = sum(1 for t in grid if any(s <= t < e for s, e in queued)) * step
    assert overlap(0.0, seconds, queued) == pytest.approx(brute, abs=0.002 * (len(spans) + 1))
