"""New sessions tried as each role on what that role runs: a refusal the plan declares
is no finding.

A Northwind-shaped variant of ``plans/chinook``: the application's role is denied the
staff schema on purpose, and its privilege rules say so; the reporting role reads the
staff directory. The application's role reads the most, so it is the role the old
sessions log in as. A new session of it must not be asked to count the staff table:
that it cannot is what the plan declares (``privileges.tried`` proves the refusal).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from planting import PLANS, Edit, copy_of, failed, planted, seeded_template

from harness.cluster import Cluster, Endpoints
from harness.gate import GateReport, cluster_login, gate_database
from harness.plan import load_plan
from harness.traffic import TrafficOptions

CHINOOK = PLANS / "chinook"
GRANTS = "up/003_grant_privileges.sql"
WORKLOAD = """
[workload]
clients = 4
think_time = "20ms"
baseline = "0.5s"

[[workload.queries]]
name = "browse_tracks"
role = "chinook_app"
kind = "read"
weight = 5
params = "SELECT album_id FROM album ORDER BY album_id LIMIT 50"
sql = "SELECT name FROM track WHERE album_id = %(album_id)s ORDER BY track_id"

[[workload.queries]]
name = "staff_directory"
role = "chinook_reporting"
kind = "read"
weight = 1
sql = "SELECT last_name FROM employee ORDER BY employee_id"
"""
STAFF_DENIED = (
    Edit(
        "plan.toml",
        'role = "chinook_app"\non = "staff"\nallow = ["USAGE"]\ndeny = ["CREATE"]',
        'role = "chinook_app"\non = "staff"\ndeny = ["USAGE", "CREATE"]',
    ),
    Edit(
        "plan.toml",
        'role = "chinook_app"\non = "staff.*"\nallow = ["SELECT"]\n'
        'deny = ["INSERT", "UPDATE", "DELETE"]',
        'role = "chinook_app"\non = "staff.*"\ndeny = ["SELECT", "INSERT", "UPDATE", "DELETE"]',
    ),
    # The old sessions log in as the application: its queries leave the staff out.
    Edit("plan.toml", " JOIN employee e ON e.employee_id = c.support_rep_id", ""),
    Edit("plan.toml", None, WORKLOAD),
    Edit(
        GRANTS,
        'GRANT USAGE ON SCHEMA "Music", sales, staff TO chinook_app, chinook_reporting;\n'
        'GRANT SELECT ON ALL TABLES IN SCHEMA "Music", sales, staff TO chinook_app, '
        "chinook_reporting;",
        'GRANT USAGE ON SCHEMA "Music", sales TO chinook_app;\n'
        'GRANT SELECT ON ALL TABLES IN SCHEMA "Music", sales TO chinook_app;\n'
        'GRANT USAGE ON SCHEMA "Music", sales, staff TO chinook_reporting;\n'
        'GRANT SELECT ON ALL TABLES IN SCHEMA "Music", sales, staff TO chinook_reporting;',
    ),
    Edit(
        GRANTS,
        "    public.invoice_line, public.employee TO chinook_app, chinook_reporting;",
        "    public.invoice_line TO chinook_app, chinook_reporting;\n"
        "GRANT SELECT ON public.employee TO chinook_reporting;",
    ),
)


@pytest.fixture
def chinook(cluster: Cluster) -> Iterator[Endpoints]:
    with (
        seeded_template(cluster, CHINOOK / "legacy.sql", prefix="chinook_roles") as template,
        copy_of(cluster, template, prefix="chinook_roles") as endpoints,
    ):
        yield endpoints


def test_a_declared_refusal_is_no_finding_for_new_sessions(
    cluster: Cluster, chinook: Endpoints, tmp_path: Path
) -> None:
    plan = load_plan(planted(CHINOOK, tmp_path / "plan", STAFF_DENIED))
    report = GateReport(plan=plan.name)
    gate_database(
        plan,
        chinook,
        wait_for_replica=cluster.wait_for_replica,
        emit=lambda _c: None,
        progress=lambda _m: None,
        report=report,
        backup_dir=tmp_path / "backups",
        traffic=TrafficOptions(clients=4, allow_users=cluster.allow_users),
        login=cluster_login(cluster, chinook),
    )
    assert failed(report) == {}
    new = next(c for c in report.checks if c.name == "sessions.new_sessions_work")
    # Each role in a session of its own: the application counts what its rules let it
    # read (10 tables), reporting all 11, and each runs its own workload query.
    assert "chinook_app: 13 (search_path" in new.reason, new.reason
    assert "chinook_reporting: 12 (search_path" in new.reason, new.reason
    tried = next(c for c in report.checks if c.name == "privileges.tried")
    assert tried.verdict == "pass", tried
