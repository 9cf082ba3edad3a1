"""Privileges tried as the roles themselves, on a live database.

Each role logs in as itself through the PgBouncer writer (``SET ROLE`` only where it
cannot log in), so what stands between the application and its data before any
table is touched is tried too: its login, CONNECT, its own settings.

The probes INSERT rows (defaults run, so serial and identity sequences advance) in
transactions that are rolled back. Sequences are restarted inside each probe
transaction, so its rollback restores them, and a session taking values at the
same time keeps every value it took: the sequence never goes back below them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from psycopg import sql

from harness.cluster import Cluster
from harness.databases import connect
from harness.gate import cluster_login
from harness.invariants import probe_privileges
from harness.plan import Plan, PrivilegeRule, load_plan
from harness.runner import Runner
from harness.testing.fix_legacy import LegacyDatabase

KCT = Path(__file__).resolve().parent.parent / "plans" / "kct"
SEQUENCE = "tenant_kct.orders_order_number_seq"


def _last_value(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(f"SELECT last_value FROM {SEQUENCE}").fetchone()  # noqa: S608
    assert row is not None
    return int(str(row[0]))


@pytest.mark.parametrize("by", ["login", "set-role"])
def test_probes_leave_sequences_as_they_were_and_rewind_no_other_session(
    cluster: Cluster, legacy_database: LegacyDatabase, by: str
) -> None:
    plan = load_plan(KCT)
    dsn = legacy_database.endpoints.primary
    with Runner(plan, dsn) as runner:
        runner.migrate()
    before = _last_value(dsn)
    login = cluster_login(cluster, legacy_database.endpoints) if by == "login" else None

    # Alone: the INSERT probes into orders drew numbers, and the rollback gave them back.
    with connect(dsn) as conn:
        check = probe_privileges(conn, plan.privileges, login=login)
    assert check.verdict == "pass", check
    assert _last_value(dsn) == before

    # With another session drawing numbers all the while, none of its values is reused.
    taken: list[int] = []
    stop = threading.Event()

    def draw() -> None:
        with connect(dsn) as other:
            while not stop.is_set() or len(taken) < 3:
                row = other.execute("SELECT nextval(%s)", (SEQUENCE,)).fetchone()
                assert row is not None
                taken.append(int(str(row[0])))
                time.sleep(0.001)

    drawer = threading.Thread(target=draw)
    drawer.start()
    try:
        with connect(dsn) as conn:
            check = probe_privileges(conn, plan.privileges, login=login)
    finally:
        stop.set()
        drawer.join(timeout=60)
    assert check.verdict == "pass", check
    assert taken == sorted(set(taken))
    assert taken[0] >= before  # the value it would have drawn with no probe running
    assert _last_value(dsn) == taken[-1]


def _migrated(legacy_database: LegacyDatabase) -> tuple[Plan, str]:
    plan = load_plan(KCT)
    dsn = legacy_database.endpoints.primary
    with Runner(plan, dsn) as runner:
        runner.migrate()
    return plan, dsn


def test_roles_log_in_as_themselves_through_pgbouncer(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """The application's path: each role logs in through the PgBouncer writer. The probes
    leave every sequence as it was, and the harness's helper schema is gone after them."""
    plan, dsn = _migrated(legacy_database)
    before = _last_value(dsn)
    login = cluster_login(cluster, legacy_database.endpoints)
    with connect(dsn) as conn:
        check = probe_privileges(conn, plan.privileges, login=login)
        helpers = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgcutover\\_probe\\_%'"
        ).fetchone()
    assert check.verdict == "pass", check
    assert "kct_app, kct_readonly logged in through the PgBouncer writer" in check.reason
    assert _last_value(dsn) == before
    assert helpers == (0,)


def test_a_role_whose_own_settings_forbid_writes_is_seen_only_by_logging_in(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """``ALTER ROLE … SET default_transaction_read_only``: every grant is in place and
    SET ROLE sees nothing wrong, but the application, logging in as the role, cannot write.

    The application was already connected: PgBouncer keeps a server session of the role
    opened before the setting, which never sees it. The probes still do, as every
    session the pooler opens from now on will."""
    plan, dsn = _migrated(legacy_database)
    login = cluster_login(cluster, legacy_database.endpoints)
    assert login is not None
    app_login = login("kct_app")
    assert app_login is not None
    assert app_login.pooled is not None
    writer = app_login.pooled
    with connect(writer) as app:
        app.execute("SELECT 1")  # a server session the pooler keeps for kct_app
    with connect(dsn) as conn:
        conn.execute(
            sql.SQL(
                "ALTER ROLE kct_app IN DATABASE {} SET default_transaction_read_only = on"
            ).format(sql.Identifier(legacy_database.name))
        )
        by_set_role = probe_privileges(conn, plan.privileges)
        logged_in = probe_privileges(conn, plan.privileges, login=login)
    with connect(writer) as app:
        old_session = app.execute("SHOW default_transaction_read_only").fetchone()
    assert old_session == ("off",)  # the pooled session from before, as the test meant
    assert by_set_role.verdict == "pass", by_set_role
    assert logged_in.verdict == "fail"
    assert (
        "kct_app cannot INSERT on tenant_kct.orders: cannot execute INSERT in a read-only "
        "transaction" in logged_in.details
    )
    assert not any(d.startswith("kct_readonly") for d in logged_in.details), logged_in.details


def test_a_role_refused_at_login_is_a_finding(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """CONNECT taken from PUBLIC and given back to only one of the plan's roles."""
    plan, dsn = _migrated(legacy_database)
    database = sql.Identifier(legacy_database.name)
    with connect(dsn) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO kct_app").format(database))
        check = probe_privileges(
            conn, plan.privileges, login=cluster_login(cluster, legacy_database.endpoints)
        )
    assert check.verdict == "fail"
    refused = [d for d in check.details if d.startswith("kct_readonly cannot log in")]
    assert len(refused) == 1, check.details
    assert "through the PgBouncer writer" in refused[0]
    assert "permission denied for database" in refused[0]
    assert not any(d.startswith("kct_app") for d in check.details), check.details


def test_update_is_tried_on_a_real_row_without_select(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """A role with UPDATE and DELETE but no SELECT is tried for exactly those, on a real
    row: a trigger that refuses the row shows that the row was touched."""
    _plan, dsn = _migrated(legacy_database)
    with connect(dsn) as conn:
        conn.execute("CREATE ROLE pgcutover_test_writer_only LOGIN")
        try:
            conn.execute(
                "GRANT USAGE ON SCHEMA tenant_kct TO pgcutover_test_writer_only;"
                "GRANT UPDATE, DELETE ON tenant_kct.measurements TO pgcutover_test_writer_only"
            )
            rule = PrivilegeRule(
                role="pgcutover_test_writer_only",
                on="tenant_kct.measurements",
                allow=frozenset({"UPDATE", "DELETE"}),
                deny=frozenset({"SELECT", "INSERT"}),
            )
            login = cluster_login(cluster, legacy_database.endpoints)
            assert probe_privileges(conn, [rule], login=login).verdict == "pass"
            conn.execute(
                "CREATE FUNCTION public.pgcutover_no_touch() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'row touched' USING ERRCODE = '42501'; END $$;"
                "CREATE TRIGGER no_touch BEFORE UPDATE OR DELETE ON tenant_kct.measurements"
                " FOR EACH ROW EXECUTE FUNCTION public.pgcutover_no_touch()"
            )
            check = probe_privileges(conn, [rule], login=login)
        finally:
            conn.execute("DROP OWNED BY pgcutover_test_writer_only")
            conn.execute("DROP ROLE pgcutover_test_writer_only")
    assert check.verdict == "fail"
    assert any("cannot UPDATE on tenant_kct.measurements: row touched" in d for d in check.details)
    assert any("cannot DELETE on tenant_kct.measurements: row touched" in d for d in check.details)


def test_an_application_role_that_cannot_log_in_is_a_finding(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    plan, dsn = _migrated(legacy_database)
    with connect(dsn) as conn:
        conn.execute("ALTER ROLE kct_readonly NOLOGIN")
        try:
            check = probe_privileges(
                conn,
                plan.privileges,
                login=cluster_login(cluster, legacy_database.endpoints),
                must_log_in=["kct_readonly"],
            )
        finally:
            conn.execute("ALTER ROLE kct_readonly LOGIN")
    assert check.details == (
        "kct_readonly cannot log in (NOLOGIN), yet the application logs in as it",
    )
    assert "kct_readonly SET ROLE (NOLOGIN)" in check.reason
