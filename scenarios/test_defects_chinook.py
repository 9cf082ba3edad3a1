"""The gate on a database nobody here wrote: Chinook, the public sample music store.

``plans/chinook`` splits it into a quoted, mixed-case schema ("Music"), sales and
staff; the gate accepts it as it is, with no allowance made for it, and rejects
each defective variant for the right reason. The legacy database is seeded once
from ``plans/chinook/legacy.sql`` into a template and cloned for each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from planting import (
    MODES,
    PLANS,
    Defect,
    Edit,
    copy_of,
    failed,
    planted,
    run_gate,
    seeded_template,
)

from harness.cluster import Cluster, Endpoints
from harness.databases import connect

CHINOOK = PLANS / "chinook"
GRANTS = "up/003_grant_privileges.sql"
PATH = "up/004_search_path.sql"

DEFECTS = (
    Defect(
        "reporting can write sales",
        "privileges.tried",
        "chinook_reporting can INSERT on sales.invoice, which the plan says it must not",
        (
            Edit(
                GRANTS, None, "GRANT INSERT ON ALL TABLES IN SCHEMA sales TO chinook_reporting;\n"
            ),
            Edit(
                "down/003_grant_privileges.sql",
                None,
                "REVOKE INSERT ON ALL TABLES IN SCHEMA sales FROM chinook_reporting;\n",
            ),
        ),
    ),
    Defect(
        "the staff directory readable by every role",
        "privileges.granted",
        "`staff.employee`: PUBLIC, that is every role, was granted SELECT",
        (
            Edit(GRANTS, None, "GRANT SELECT ON ALL TABLES IN SCHEMA staff TO PUBLIC;\n"),
            Edit(
                "down/003_grant_privileges.sql",
                None,
                "REVOKE SELECT ON ALL TABLES IN SCHEMA staff FROM PUBLIC;\n",
            ),
        ),
    ),
    Defect(
        "new sessions cannot find the staff",
        "sessions.new_sessions_work",
        'relation "employee" does not exist',
        (Edit(PATH, '"Music", sales, staff, public', '"Music", sales'),),
    ),
    Defect(
        "a table moved that the layout does not list",
        "tables.intact",
        "`public.playlist_track` (not in the plan's layout) moved to Music.playlist_track",
        (Edit("plan.toml", '"public.playlist_track" = \'"Music"\'\n', ""),),
    ),
    Defect(
        "a column default changed on a quoted schema's table",
        "tables.intact",
        "`Music.track`: column unit_price changed from numeric(10,2) NOT NULL to "
        "numeric(10,2) NOT NULL DEFAULT 0.99",
        (
            Edit(
                GRANTS,
                None,
                'ALTER TABLE "Music".track ALTER COLUMN unit_price SET DEFAULT 0.99;\n',
            ),
            Edit(
                "down/003_grant_privileges.sql",
                None,
                'ALTER TABLE "Music".track ALTER COLUMN unit_price DROP DEFAULT;\n',
            ),
        ),
    ),
    Defect(
        "a view grant forgotten for one role (met only by its sessions opened before)",
        "sessions.old_sessions_as_roles",
        "as chinook_reporting, search_path",
        (
            Edit(
                GRANTS,
                "    public.invoice_line, public.employee TO chinook_app, chinook_reporting;",
                "    public.invoice_line, public.employee TO chinook_app;",
            ),
        ),
    ),
)


@pytest.fixture(scope="module")
def chinook_template_name(cluster: Cluster) -> Iterator[str]:
    with seeded_template(cluster, CHINOOK / "legacy.sql", prefix="chinook") as name:
        yield name


@pytest.fixture
def chinook_endpoints(cluster: Cluster, chinook_template_name: str) -> Iterator[Endpoints]:
    with copy_of(cluster, chinook_template_name, prefix="chinook") as endpoints:
        yield endpoints


@pytest.mark.parametrize("mode", MODES)
def test_chinook_plan_is_accepted(
    mode: str, cluster: Cluster, chinook_endpoints: Endpoints, tmp_path: Path
) -> None:
    with connect(chinook_endpoints.primary) as conn:
        roles = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    report = run_gate(CHINOOK, cluster, chinook_endpoints, tmp_path, traffic=mode == "traffic")
    assert failed(report) == {}
    checks = {c.name: c for c in report.checks}
    # Under traffic the application's roles log in before the baseline is taken; roles
    # are the cluster's, so a gate with traffic before this one may have left them.
    assert (
        mode == "traffic"
        or {"chinook_app", "chinook_reporting"} & roles
        or (
            "(roles kept as the plan declares: chinook_app, chinook_reporting)"
            in checks["rollback.exact"].reason
        )
    )
    assert '"Music"' in checks["sessions.new_sessions_work"].reason


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("defect", DEFECTS, ids=[d.name for d in DEFECTS])
def test_chinook_defect_is_rejected_for_its_reason(
    defect: Defect, mode: str, cluster: Cluster, chinook_endpoints: Endpoints, tmp_path: Path
) -> None:
    plan = planted(CHINOOK, tmp_path / "plan", defect.edits)
    found = failed(run_gate(plan, cluster, chinook_endpoints, tmp_path, traffic=mode == "traffic"))
    assert defect.check in found, found
    assert mode == "traffic" or set(found) == {defect.check}, found
    assert any(defect.message in d for d in found[defect.check]), found[defect.check]


def test_the_default_traffic_reads_as_the_plans_roles(
    cluster: Cluster, chinook_endpoints: Endpoints, tmp_path: Path
) -> None:
    """Chinook has no ``[workload]``: its traffic reads each table as a role its rules let
    read it. Sessions opened before the migration read through the views left in
    ``public``; a view grant forgotten for one role is an error the application sees
    there, which traffic run as a superuser passed (and the privilege probe, which
    tries what the rules name, does not look at)."""
    forgotten = Edit(
        GRANTS,
        "    public.invoice_line, public.employee TO chinook_app, chinook_reporting;",
        "    public.invoice_line, public.employee TO chinook_app;",
    )
    plan = planted(CHINOOK, tmp_path / "plan", (forgotten,))
    report = run_gate(plan, cluster, chinook_endpoints, tmp_path, traffic=True)
    found = failed(report)
    errors = " ".join(found.get("traffic.no_errors", []))
    assert "permission denied for view" in errors, found
    assert report.context["traffic"]["roles"] == ["chinook_app", "chinook_reporting"]  # type: ignore[index]
