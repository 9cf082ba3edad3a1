"""The application's own traffic through the gate: what it proves, and what it must not
claim. Each test gates a plan on the shared cluster with a small number of clients."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from waiting import wait_until

from harness.cluster import Cluster, Endpoints
from harness.errors import UsageError
from harness.gate import GateReport, cluster_login, gate_database
from harness.invariants import Check
from harness.invariants.prepared import PREPARED_SINCE, pgbouncer_version
from harness.plan import load_plan
from harness.plan.workload import Workload, WorkloadQuery
from harness.testing.fix_legacy import LegacyDatabase
from harness.traffic import TrafficOptions
from harness.traffic.clients import PRIME_BOUND, Traffic, prepare_params
from harness.traffic.logins import Logins

PLANS = Path(__file__).resolve().parent.parent / "plans"
CLIENTS = 8
# A read that writes (nextval), and a read of a table that is not there.
BAD_QUERIES = """
[[workload.queries]]
name = "sneaky_counter"
role = "kct_app"
kind = "read"
sql = "SELECT nextval('orders_order_number_seq')"

[[workload.queries]]
name = "old_report"
role = "kct_readonly"
kind = "read"
sql = "SELECT count(*) FROM no_such_table"
"""


def _gate(
    plan_dir: Path,
    cluster: Cluster,
    legacy_database: LegacyDatabase,
    tmp: Path,
    *,
    progress: object = None,
) -> GateReport:
    report = GateReport(plan=plan_dir.name)
    gate_database(
        load_plan(plan_dir),
        legacy_database.endpoints,
        wait_for_replica=cluster.wait_for_replica,
        emit=lambda _c: None,
        progress=progress if callable(progress) else (lambda _m: None),
        report=report,
        backup_dir=tmp / "backups",
        traffic=TrafficOptions(clients=CLIENTS, allow_users=cluster.allow_users),
        login=cluster_login(cluster, legacy_database.endpoints),
    )
    return report


def _check(report: GateReport, name: str) -> Check:
    return next(c for c in report.checks if c.name == name)


def _failed(report: GateReport) -> set[str]:
    return {c.name for c in report.checks if c.verdict == "fail"}


def _kct_with(tmp_path: Path, steps: dict[str, tuple[str, str]]) -> Path:
    """A copy of the corrected plan with extra steps: name -> (up SQL, down SQL)."""
    target = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", target)
    for name, (up, down) in steps.items():
        (target / "up" / name).write_text(up)
        (target / "down" / name).write_text(down)
    return target


def _touch(name: str, *, weight: int) -> WorkloadQuery:
    """A write that changes no value: the traffic's writes, without moving the data."""
    return WorkloadQuery(
        name=name,
        role=None,
        kind="write",
        weight=weight,
        sql=("UPDATE customers SET phone = phone WHERE id = (SELECT min(id) FROM customers)",),
    )


def _traffic(
    endpoints: Endpoints, *queries: WorkloadQuery, clients: int, pools: dict[str, int] | None = None
) -> Traffic:
    """Traffic of ``queries`` as the harness itself, started; the caller stops it."""
    workload = Workload(queries=queries, clients=clients, think_time=0.002)
    logins = Logins(endpoints=endpoints, admin=endpoints.primary, passwords={})
    traffic = Traffic(workload, logins, prepare_params(endpoints.primary, workload), pools=pools)
    traffic.start()
    return traffic


def test_plan_as_written_breaks_the_application_at_its_move(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    report = _gate(PLANS / "as-written", cluster, legacy_database, tmp_path)
    assert "traffic.no_errors" in _failed(report)
    details = _check(report, "traffic.no_errors").details
    broken = [d for d in details if "from up/003_move_tables.sql on" in d]
    assert any(
        'relation "products" does not exist [SQLSTATE 42P01]' in d and " as kct_app " in d
        for d in broken
    ), details
    # Nothing failed before the move but what the plan's own driver does whatever the
    # steps do: it prepares every statement ([workload] prepare_threshold = 0, as the
    # seed's Prisma clients do), and a PgBouncer before 1.21 pools the writer by
    # transaction without keeping prepared statements (sessions.prepared_statements
    # names the cause and the fix). Only writes fail so: the reader's session pool keeps
    # each client's server connection. A write finds its statement missing (26000), or
    # another client's of the same name there (42P05) and run with its parameters
    # (08P01, or a type error).
    early = ("from before the migration", "from up/001_", "from up/002_")
    before = [d for d in details if any(e in d for e in early)]
    version = pgbouncer_version(legacy_database.endpoints)
    assert version is not None
    if version >= PREPARED_SINCE:
        assert before == [], details
    else:
        assert "sessions.prepared_statements" in _failed(report)
    assert [d for d in before if " via PgBouncer writer: " not in d] == [], details
    assert not before or any('prepared statement "_pg3_…"' in d for d in before), details
    summary = report.context["traffic"]
    assert isinstance(summary, dict)
    assert summary["requests"] > 0
    assert summary["failed"] > 0


def test_corrected_plan_with_a_harmless_step_passes_under_traffic(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = _kct_with(
        tmp_path,
        {
            "007_comment.sql": (
                "COMMENT ON TABLE tenant_kct.orders IS 'orders of the tenant';\n",
                "COMMENT ON TABLE tenant_kct.orders IS NULL;\n",
            )
        },
    )
    report = _gate(plan, cluster, legacy_database, tmp_path)
    assert _failed(report) == set(), [str(c) for c in report.checks if not c.passed]
    summary = report.context["traffic"]
    assert isinstance(summary, dict)
    assert summary["writes_acknowledged"] > 0
    assert "acknowledged writes" in _check(report, "traffic.writes_kept").reason
    old = _check(report, "traffic.old_connections_used").reason
    assert "PgBouncer reader" in old
    assert "PgBouncer writer" in old


_VIEW = """CREATE VIEW public.appointments AS SELECT * FROM tenant_kct.appointments;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.appointments TO kct_app;
GRANT SELECT ON public.appointments TO kct_readonly;
"""


def test_a_state_between_two_steps_meets_every_query_of_the_workload(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """One step drops the view old sessions write appointments through and the next one
    puts it back: the application is broken only between the two. The traffic waits
    while the harness probes after a step, then sends every query once before the next
    one, so both writes that go through that view meet the gap every run (without the
    sweep, the rarer of them met it in some runs and not in others)."""
    plan = _kct_with(
        tmp_path,
        {
            "007_drop_view.sql": ("DROP VIEW public.appointments;\n", _VIEW),
            "008_view_again.sql": (_VIEW, "DROP VIEW public.appointments;\n"),
        },
    )
    report = _gate(plan, cluster, legacy_database, tmp_path)
    details = _check(report, "traffic.no_errors").details
    for query in ("book_appointment", "walk_in_cancelled"):  # weights 2 and 1 in 44
        assert any(
            d.startswith(f"{query} as kct_app") and "from up/007_drop_view.sql on" in d
            for d in details
        ), details


def test_bad_workload_is_refused_before_any_step(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", plan)
    toml = plan / "plan.toml"
    toml.write_text(toml.read_text() + BAD_QUERIES)
    with pytest.raises(UsageError) as caught:
        _gate(plan, cluster, legacy_database, tmp_path)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "sneaky_counter" in message
    assert "marked read, but it writes" in message
    assert "old_report" in message
    assert 'relation "no_such_table" does not exist' in message
    with psycopg.connect(legacy_database.endpoints.primary) as conn:
        row = conn.execute("SELECT to_regclass('public.products') IS NOT NULL").fetchone()
        assert row == (True,), "a step ran although the workload was refused"


def test_traffic_stops_when_the_gate_is_interrupted(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    def interrupt(message: str) -> None:
        if message == "rolling back":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _gate(PLANS / "kct", cluster, legacy_database, tmp_path, progress=interrupt)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("pgcutover-")]
    assert alive == []


@pytest.mark.slow
def test_lock_timeout_and_retry_keep_the_application_moving_behind_a_long_transaction(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A report holds products open while the move starts: the move gives up its place in
    the lock queue every 100 ms and retries, so the application waits at most that long."""
    plan = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", plan)
    toml = plan / "plan.toml"
    text = re.sub(r'(?m)^lock_timeout = ".*"$', 'lock_timeout = "100ms"', toml.read_text())
    assert 'lock_timeout = "100ms"' in text
    toml.write_text(text)
    holder = psycopg.connect(legacy_database.endpoints.primary)
    released = threading.Event()

    def release() -> None:
        holder.commit()
        released.set()

    def hold_products(message: str) -> None:
        if message.startswith("applying up/002_move_tables.sql") and not released.is_set():
            holder.execute("SELECT count(*) FROM products /* long report */")
            threading.Timer(1.5, release).start()

    try:
        report = _gate(plan, cluster, legacy_database, tmp_path, progress=hold_products)
    finally:
        released.wait(10)
        holder.close()
    assert _failed(report) == set(), [str(c) for c in report.checks if not c.passed]
    assert "lock-timeout retries" in _check(report, "migrate.steps").reason
    phases = {p["phase"]: p for p in report.context["traffic"]["phases"]}  # type: ignore[index]
    move = phases["up/002_move_tables.sql"]
    assert move["max_ms"] < 1000
    assert move["queue_depth"] >= 1
    assert "long report" in str(move["blocker"]), move


def test_the_baseline_lasts_until_a_rare_path_has_served_a_request(
    legacy_database: LegacyDatabase,
) -> None:
    """A write among a hundred slow reads: a baseline of no time at all still ends with a
    server connection on each path, opened before the first step would start."""
    slow_read = WorkloadQuery(
        name="slow_read", role=None, kind="read", weight=100, sql=("SELECT pg_sleep(0.02)",)
    )
    traffic = _traffic(
        legacy_database.endpoints, slow_read, _touch("rare_write", weight=1), clients=2
    )
    try:
        traffic.warm_up(0.0)
        served = {r.path for r in list(traffic.requests) if r.ok and r.backend_start}
    finally:
        traffic.stop()
    assert served == {"reader", "writer"}


def test_a_pool_smaller_than_the_clients_is_filled_without_waiting_out_the_bound(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """More clients than the writer's pool: the traffic starts once the pool holds all its
    server connections at once, not after the bound that a pool smaller than the plan
    says would need, and no burst of the traffic opens more later."""
    admin = cluster.pgbouncer_admin.get("writer")
    if admin is None:
        pytest.skip("the provider starts no PgBouncer of its own to read the pool of")
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        config = {str(r[0]): str(r[1]) for r in conn.execute("SHOW CONFIG").fetchall()}
    pool = int(config["default_pool_size"])
    started = time.monotonic()
    traffic = _traffic(
        legacy_database.endpoints, _touch("touch", weight=1), clients=pool + 3,
        pools={"writer": pool},
    )  # fmt: skip
    try:
        took = time.monotonic() - started
        with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
            cur = conn.execute("SHOW POOLS")
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        traffic.stop()
    database = psycopg.conninfo.conninfo_to_dict(legacy_database.endpoints.writer)["dbname"]
    mine = [r for r in rows if r["database"] == database]
    servers = sum(int(r[k]) for r in mine for k in ("sv_active", "sv_idle", "sv_used", "sv_tested"))
    assert servers == pool, mine
    assert took < PRIME_BOUND / 2, took


def test_no_request_runs_while_the_traffic_is_on_hold(legacy_database: LegacyDatabase) -> None:
    """The harness's comparisons read while the application waits, reads and writes alike:
    a request in flight finishes first, none starts inside, and they resume after. A
    sweep of the reads sends every read query, the rarest too, and no write."""
    read = WorkloadQuery(
        name="slow_read", role=None, kind="read", weight=30, sql=("SELECT pg_sleep(0.05)",)
    )
    rare_read = WorkloadQuery(name="rare_read", role=None, kind="read", weight=1, sql=("SELECT 1",))
    traffic = _traffic(
        legacy_database.endpoints, read, rare_read, _touch("touch", weight=10), clients=4
    )
    try:
        traffic.warm_up(0.2)
        with traffic.on_hold():
            held_at = time.monotonic()
            assert not any(c.busy for c in traffic._clients)
            time.sleep(0.3)  # the window observed: the clients would fill it many times over
            released_at = time.monotonic()
        wait_until(
            lambda: any(r.start > released_at for r in list(traffic.requests)),
            timeout=10,
            what="a request after the hold",
        )
        with traffic.on_hold():
            reads_from = time.monotonic()
            traffic.sweep(("read",))
            reads_until = time.monotonic()
    finally:
        traffic.stop()
    inside = [r for r in traffic.requests if r.end > held_at and r.start < released_at]
    assert inside == [], inside
    assert {r.kind for r in traffic.requests if r.start < held_at} == {"read", "write"}
    window = [r for r in traffic.requests if r.end > reads_from and r.start < reads_until]
    assert {r.query for r in window} >= {"slow_read", "rare_read"}
    assert "touch" not in {r.query for r in window}


def test_a_connection_left_in_a_failed_transaction_fails_one_request_not_every_later_one(
    legacy_database: LegacyDatabase,
) -> None:
    """The application's pool rolls back a connection given back inside a transaction; the
    traffic's clients do the same, so one cancelled request does not turn every later
    one on that connection into "current transaction is aborted"."""
    read = WorkloadQuery(name="read", role=None, kind="read", weight=1, sql=("SELECT 1",))
    traffic = _traffic(legacy_database.endpoints, read, clients=1)
    try:
        with traffic.on_hold():
            client = traffic._clients[0]
            conn = client.conns[(None, "reader")]
            conn.execute("BEGIN")
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
            done = client.run(read)
    finally:
        traffic.stop()
    assert done.ok, done.message
