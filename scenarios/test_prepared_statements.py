"""``sessions.prepared_statements`` on a real primary, replica and PgBouncer.

A statement prepared before a step that changes its result type fails after the
step (SQLSTATE 0A000) in the sessions that hold it, though the same text prepared
afresh works; the corrected plan leaves every prepared statement valid; and a
driver that prepares, behind the PgBouncer writer's transaction pool of a
PgBouncer without prepared-statement support, is named whatever the steps do.
(``plans/kct`` as shipped passes every check: scenarios/test_gate.py.)

The gate's traffic prepares as the workload declares: the server shows its
requests prepared where ``prepare_threshold`` is given and never otherwise, and
behind that transaction pool they fail as the application's would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from planting import PLANS, Edit, planted, run_gate

from harness.cluster import Cluster
from harness.invariants.prepared import PREPARED_SINCE, pgbouncer_version
from harness.plan.workload import Workload, WorkloadQuery
from harness.testing.fix_legacy import LegacyDatabase
from harness.traffic.clients import Request, Traffic, prepare_params
from harness.traffic.logins import Logins

CHECK = "sessions.prepared_statements"
STAR = "SELECT * FROM suppliers ORDER BY id LIMIT 1"
# An application query that reads every column, and a step that adds one to its table.
SELECT_STAR = (
    Edit("plan.toml", "queries = [\n", f'queries = [\n    "{STAR}",\n'),
    Edit(
        "up/002_move_tables.sql",
        "ALTER TABLE public.suppliers SET SCHEMA tenant_shared;",
        "ALTER TABLE public.suppliers ADD COLUMN rating integer;\n"
        "ALTER TABLE public.suppliers SET SCHEMA tenant_shared;",
    ),
    Edit(
        "down/002_move_tables.sql",
        "ALTER TABLE tenant_shared.suppliers SET SCHEMA public;",
        "ALTER TABLE tenant_shared.suppliers SET SCHEMA public;\n"
        "ALTER TABLE public.suppliers DROP COLUMN rating;",
    ),
)
PREPARING_DRIVER = (
    Edit("plan.toml", 'baseline = "1s"\n', 'baseline = "1s"\nprepare_threshold = 0\n'),
)


def _check(
    edits: tuple[Edit, ...], cluster: Cluster, legacy_database: LegacyDatabase, tmp: Path
) -> tuple[str, str, list[str]]:
    plan = planted(PLANS / "kct", tmp / "plan", edits)
    report = run_gate(plan, cluster, legacy_database.endpoints, tmp)
    (check,) = [c for c in report.checks if c.name == CHECK]
    failed = [c.name for c in report.checks if c.verdict == "fail"]
    assert "sessions.keep_working" not in failed, failed
    # gate.json says what ran: the server's version and the PgBouncer writer's.
    version = pgbouncer_version(legacy_database.endpoints)
    assert version is not None
    assert report.to_json()["pgbouncer"] == ".".join(map(str, version))
    assert str(report.to_json()["postgresql"])[:2] in ("15", "16", "17")
    return check.verdict, check.reason, list(check.details)


def test_a_column_added_under_select_star_breaks_statements_prepared_before(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    verdict, _reason, details = _check(SELECT_STAR, cluster, legacy_database, tmp_path)
    assert verdict == "fail"
    (broken,) = [d for d in details if STAR in d]
    assert "from up/002_move_tables.sql on" in broken
    assert "cached plan must not change result type [SQLSTATE 0A000]" in broken
    # Held directly and through the reader's session pool, on both servers.
    assert "direct to the primary" in broken
    assert "direct to the replica" in broken
    assert any(d.startswith("fix: name the columns instead of `*`") for d in details)
    assert not any("prepare_threshold" in d for d in details), details


def test_the_corrected_plan_keeps_them_valid_and_a_preparing_driver_needs_pgbouncer_1_21(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """kct's steps leave every prepared statement valid (its compatibility views have the
    moved tables' columns); its application, made to prepare, is named on PgBouncer 1.18."""
    version = pgbouncer_version(legacy_database.endpoints)
    assert version is not None, "the cluster's PgBouncer writer answers SHOW VERSION"
    verdict, reason, details = _check(PREPARING_DRIVER, cluster, legacy_database, tmp_path)
    assert "could not be prepared" not in reason
    if version >= PREPARED_SINCE:
        # A PgBouncer that keeps prepared statements across its server connections.
        assert (verdict, details) == ("pass", [])
        return
    assert verdict == "fail"
    (named,) = details
    assert f"PgBouncer {'.'.join(map(str, version))}" in named
    assert "PgBouncer 1.21 or later with max_prepared_statements" in named


MARKER = "pgcutover-prepare-probe"
PROBE_NAME = "touch_customer"


def _probe(run: str) -> WorkloadQuery:
    """A write whose RETURNING says, from the server connection that ran it, which
    statements are prepared there: ``mine``, of its own text (the marker and ``run`` are
    in it, so it counts itself once prepared; a pooled server connection keeps an earlier
    run's), and ``others``, not a probe's at all (the harness's own queries)."""
    return WorkloadQuery(
        name=PROBE_NAME,
        role=None,
        kind="write",
        weight=1,
        params="SELECT id AS customer_id FROM customers ORDER BY id LIMIT 20",
        # The marker and ``run`` are this module's own words, not user data.
        sql=(
            "UPDATE customers SET phone = phone WHERE id = %(customer_id)s RETURNING "  # noqa: S608
            "(SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE "
            f"'%%{MARKER} {run}%%') AS mine, "
            "(SELECT count(*) FROM pg_prepared_statements WHERE statement NOT LIKE "
            f"'%%{MARKER}%%') AS others",
        ),
    )


def _another_write() -> WorkloadQuery:
    """A write of two parameters beside the probe's one: psycopg names a client's first
    statement ``_pg3_0``, so clients that ran the other first hold another ``_pg3_0``."""
    return WorkloadQuery(
        name="touch_phone",
        role=None,
        kind="write",
        weight=1,
        params="SELECT id AS customer_id FROM customers ORDER BY id LIMIT 20",
        sql=("UPDATE customers SET phone = phone WHERE id = %(customer_id)s AND %(token)s <> ''",),
    )


# What a statement prepared on one server connection of a transaction pool meets on
# another (PgBouncer before 1.21): not there (26000), another client's of the same name
# there (42P05), or that one run with this request's parameters (08P01, 22P02 …).
PREPARING_ERRORS = {"26000", "42P05", "08P01", "22P02", "42804"}


def _traffic(
    legacy_database: LegacyDatabase,
    *,
    run: str,
    also: tuple[WorkloadQuery, ...] = (),
    prepare_threshold: int | None,
    clients: int,
    until: Callable[[list[Request]], bool],
) -> list[Request]:
    """The probe's requests through the PgBouncer writer's transaction pool, once ``until``
    holds of them (or after 20 sec, when it never does)."""
    endpoints = legacy_database.endpoints
    workload = Workload(
        queries=(_probe(run), *also),
        clients=clients,
        think_time=0.002,
        prepare_threshold=prepare_threshold,
    )
    logins = Logins(endpoints=endpoints, admin=endpoints.primary, passwords={})
    traffic = Traffic(workload, logins, prepare_params(endpoints.primary, workload))
    traffic.start()
    try:
        deadline = time.monotonic() + 20
        while not until(list(traffic.requests)) and time.monotonic() < deadline:
            traffic.stopping.wait(0.02)
    finally:
        traffic.stop()
    return list(traffic.requests)


def _ok(count: int) -> Callable[[list[Request]], bool]:
    return lambda requests: sum(r.ok for r in requests) >= count


def test_the_traffic_prepares_only_when_the_workload_declares_a_prepare_threshold(
    legacy_database: LegacyDatabase,
) -> None:
    prepared = _traffic(
        legacy_database, run="prepared", prepare_threshold=0, clients=1, until=_ok(20)
    )
    ran = [r for r in prepared if r.ok]
    assert len(ran) >= 20, [r.message for r in prepared if not r.ok]
    # Every request that ran, ran prepared; the harness's own queries of the same
    # request (its backend, its transaction id, the tables it wrote) were not.
    assert all(r.values["mine"] >= 1 for r in ran), [r.values for r in ran]
    assert all(r.values["others"] == 0 for r in ran), [r.values for r in ran]

    unprepared = _traffic(
        legacy_database, run="unprepared", prepare_threshold=None, clients=4, until=_ok(40)
    )
    assert [r.message for r in unprepared if not r.ok] == []
    assert len(unprepared) >= 40
    assert {(r.values["mine"], r.values["others"]) for r in unprepared} == {(0, 0)}


def test_a_preparing_workload_fails_behind_a_transaction_pool_without_prepared_statements(
    legacy_database: LegacyDatabase,
) -> None:
    version = pgbouncer_version(legacy_database.endpoints)
    assert version is not None, "the cluster's PgBouncer writer answers SHOW VERSION"
    broken = version < PREPARED_SINCE  # the cluster's writer keeps the default settings

    def enough(requests: list[Request]) -> bool:
        failed = sum(not r.ok for r in requests)
        return failed >= 3 if broken else len(requests) >= 200

    requests = _traffic(
        legacy_database,
        run="hazard",
        also=(_another_write(),),
        prepare_threshold=0,
        clients=4,
        until=enough,
    )
    failed = [r for r in requests if not r.ok]
    if not broken:
        # PgBouncer keeps each client's prepared statements across its server connections.
        assert [r.message for r in failed] == []
        assert all(r.values["mine"] >= 1 for r in requests if r.query == PROBE_NAME)
        return
    assert len(failed) >= 3, f"{len(requests)} requests and none failed on PgBouncer {version}"
    assert {r.sqlstate for r in failed} <= PREPARING_ERRORS, {r.message for r in failed}
    assert any("_pg3_" in r.message for r in failed), {r.message for r in failed}
