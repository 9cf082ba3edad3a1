"""Data damage on the tables the application writes, found with its traffic running.

The default gate runs the application's traffic; the comparisons then hold the
database against the baseline as the application's writes left it (the change
ledger), so a step that changes rows of a table the application writes is no
more hidden than one on a table it only reads. Each defect here touches a table
the workload of ``plans/kct`` writes (orders, appointments, customers), and must
fail its check, for its reason, with the traffic on. The corrected plan passes
under the same traffic. The last one is no flaw of the migration but of the run: a
pooler configured so that the traffic cannot meet the stale-session hazard, which
``traffic.old_connections_used`` must then say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from planting import (
    PLANS,
    Defect,
    Edit,
    copy_of,
    failed,
    new_step,
    planted,
    run_gate,
    seeded_template,
)

from harness.cluster import Cluster
from harness.testing.fix_legacy import LegacyDatabase

DEFECTS = (
    Defect(
        "a step rewrites a column of every order",
        "data.unchanged",
        "up/007_tidy_orders.sql: `public.orders`: ",
        new_step(
            7,
            "tidy_orders",
            up="UPDATE tenant_kct.orders SET notes = coalesce(notes, '') || ' (migrated)';\n",
            down="SELECT 1;\n",
        ),
    ),
    Defect(
        "a rollback deletes a few appointments",
        "rollback.exact",
        "down/007_prune.sql: `public.appointments`: 3 rows deleted, not by the application",
        new_step(
            7,
            "prune",
            up="SELECT 1;\n",
            down="DELETE FROM tenant_kct.appointments WHERE id IN "
            "(SELECT id FROM tenant_kct.appointments ORDER BY id LIMIT 3);\n",
        ),
    ),
    Defect(
        "a rollback rewinds the orders' sequence",
        "rollback.exact",
        "orders_order_number_seq`: at ",
        new_step(
            7,
            "renumber",
            up="SELECT 1;\n",
            down="SELECT setval('tenant_kct.orders_order_number_seq', "
            "(SELECT min(order_number) FROM tenant_kct.orders));\n",
        ),
    ),
    Defect(
        "a rollback restores appointments from a snapshot, losing the writes since",
        "traffic.writes_kept",
        "written by the application, missing",
        new_step(
            7,
            "snapshot",
            up="CREATE TABLE tenant_kct.appointments_before AS "
            "SELECT * FROM tenant_kct.appointments;\n"
            "SELECT pg_sleep(0.5);\n",
            down="DELETE FROM tenant_kct.appointments;\n"
            "INSERT INTO tenant_kct.appointments SELECT * FROM tenant_kct.appointments_before;\n"
            "DROP TABLE tenant_kct.appointments_before;\n",
        ),
    ),
    Defect(
        "a rollback leaves a table unlogged: its rows never reach the replica",
        "rollback.exact_on_replica",
        "`public.measurements`: persistence permanent expected, unlogged found",
        new_step(
            7,
            "fast_backfill",
            up="SELECT 1;\n",
            # A table cannot be unlogged while a foreign key ties it to a logged one.
            down="ALTER TABLE tenant_kct.measurements\n"
            "    DROP CONSTRAINT measurements_customer_id_fkey;\n"
            "ALTER TABLE tenant_kct.measurements SET UNLOGGED;\n",
        ),
    ),
)


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.name for d in DEFECTS])
def test_data_damage_on_written_tables_fails_under_traffic(
    defect: Defect, cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = planted(PLANS / "kct", tmp_path / "plan", defect.edits)
    found = failed(run_gate(plan, cluster, legacy_database.endpoints, tmp_path, traffic=True))
    assert defect.check in found, found
    assert any(defect.message in d for d in found[defect.check]), found[defect.check]


def test_corrected_plan_passes_with_every_row_accounted_for(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    report = run_gate(PLANS / "kct", cluster, legacy_database.endpoints, tmp_path, traffic=True)
    assert failed(report) == {}
    checks = {c.name: c for c in report.checks}
    for name in ("data.unchanged", "rollback.exact", "roundtrip.migrate_again"):
        assert "the application changed, accounted for one by one" in checks[name].reason
    assert report.context["ledger"]["unaccounted"] == {}  # type: ignore[index]
    # Per step: the WAL it wrote, and how far behind the replica was as it ended.
    steps = report.context["ledger"]["steps"]  # type: ignore[index]
    assert len(steps) == 18, steps  # 6 up, 6 down, 6 up again
    assert all(s["wal_bytes"] > 0 and s["replica_behind_bytes"] >= 0 for s in steps), steps
    kept = checks["traffic.writes_kept"].reason
    acknowledged = report.context["traffic"]["writes_acknowledged"]  # type: ignore[index]
    assert f"all {acknowledged:,} acknowledged writes verified" in kept


BACKFILL = new_step(
    7,
    "backfill_currency",
    up="UPDATE tenant_shared.products SET name = name || ' ' WHERE name NOT LIKE '% ';\n",
    down="UPDATE tenant_shared.products SET name = rtrim(name, ' ');\n",
)


def test_a_step_changing_rows_is_named_without_traffic_too(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The ledger runs in both modes: the step, table, rows and columns are named."""
    plan = planted(PLANS / "kct", tmp_path / "plan", BACKFILL)
    found = failed(run_gate(plan, cluster, legacy_database.endpoints, tmp_path))
    named = (
        "up/007_backfill_currency.sql: `public.products`: 37 rows updated (columns changed: "
        "name, updated_at), not by the application"
    )
    assert named in found["data.unchanged"], found


def test_a_row_change_the_plan_declares_is_expected(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    declared = Edit(
        "plan.toml",
        None,
        '\n[[data_changes]]\nstep = "up/007_backfill_currency.sql"\ntable = "public.products"\n'
        '\n[[data_changes]]\nstep = "down/007_backfill_currency.sql"\ntable = "public.products"\n',
    )
    plan = planted(PLANS / "kct", tmp_path / "plan", (*BACKFILL, declared))
    report = run_gate(plan, cluster, legacy_database.endpoints, tmp_path, traffic=True)
    assert failed(report) == {}
    reason = next(c.reason for c in report.checks if c.name == "data.unchanged")
    assert "up/007_backfill_currency.sql: 37 in `public.products`" in reason


# A CHECK that calls a function reading a table by its bare name: pg_restore runs with an
# empty search_path, so the rows of price_list cannot be restored. A defect of the
# database the plan starts from, which the plan's first step must not be taken without.
UNRESTORABLE = """
CREATE TABLE public.price_floor (v numeric NOT NULL);
INSERT INTO public.price_floor VALUES (0);
CREATE FUNCTION public.above_floor(x numeric) RETURNS boolean LANGUAGE sql STABLE
    AS 'SELECT x >= (SELECT min(v) FROM price_floor)';
CREATE TABLE public.price_list (
    id int PRIMARY KEY, price numeric CHECK (public.above_floor(price))
);
INSERT INTO public.price_list VALUES (1, 5), (2, 7);
"""
STORE = Path(__file__).resolve().parent / "fixtures" / "rental_store" / "plan"


def test_a_backup_that_does_not_restore_fails_under_traffic(
    cluster: Cluster, tmp_path: Path
) -> None:
    plan = planted(STORE, tmp_path / "plan", (Edit("legacy.sql", None, UNRESTORABLE),))
    with (
        seeded_template(cluster, plan / "legacy.sql", prefix="unrestorable") as template,
        copy_of(cluster, template, prefix="unrestorable") as endpoints,
    ):
        found = failed(run_gate(plan, cluster, endpoints, tmp_path, traffic=True))
    assert "backup.restores" in found, found
    assert any("price_list" in d for d in found["backup.restores"]), found["backup.restores"]


def test_a_run_that_cannot_meet_the_stale_session_hazard_says_so(tmp_path: Path) -> None:
    """No flaw of the migration, but of the run: a reader that uses each server
    connection only once (``server_lifetime = 0``) never lets a read after the first
    step meet a session opened before it, so the gate cannot show that hazard and must
    not pass as if it had. The plan's poolers are the ones the command starts."""
    plan = planted(
        PLANS / "kct",
        tmp_path / "plan",
        (Edit("plan.toml", "server_lifetime = 7200", "server_lifetime = 0"),),
    )
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(plan),
         "--reports", str(reports), "--traffic-clients", "4"],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads((reports / "gate.json").read_text())["checks"]}
    failing = {name for name, c in checks.items() if c["verdict"] == "fail"}
    assert failing == {"traffic.old_connections_used"}, done.stdout
    assert "PgBouncer reader: none of" in done.stdout
