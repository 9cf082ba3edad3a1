"""The gate's acceptance: the plan as written is rejected for each of its defects, the
corrected plan passes, and plans with one planted defect are each rejected precisely."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from planting import run_gate

from harness.cluster import Cluster
from harness.gate import GateReport
from harness.invariants import Check
from harness.legacy import LEGACY_COUNTS
from harness.report.schema import parse_gate
from harness.testing.fix_legacy import LegacyDatabase

PLANS = Path(__file__).resolve().parent.parent / "plans"


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PLANS.parent)},
    )


def _gate(
    plan_dir: Path, cluster: Cluster, legacy_database: LegacyDatabase, tmp: Path
) -> GateReport:
    return run_gate(plan_dir, cluster, legacy_database.endpoints, tmp)


def _check(report: GateReport, name: str) -> Check:
    return next(c for c in report.checks if c.name == name)


def _failed(report: GateReport) -> set[str]:
    return {c.name for c in report.checks if c.verdict == "fail"}


def _copy_plan(tmp_path: Path) -> Path:
    target = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
def test_plan_as_written_is_rejected_naming_each_defect(tmp_path: Path) -> None:
    done = _harness(
        "gate",
        "--plan",
        str(PLANS / "as-written"),
        "--no-traffic",
        "--reports",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["verdict"] == "unsafe"
    checks = {c["name"]: c for c in report["checks"]}
    details = {name: "\n".join(c["details"]) for name, c in checks.items()}
    # The roles it grants to are never created, and SELECT is no schema privilege.
    assert 'role "kct_app" does not exist' in details["migrate.steps"]
    # …which the plan's SQL shows too, with or without the traffic's logins.
    assert (
        "`kct_app` does not exist before the migration and no up step" in details["roles.created"]
    )
    assert "invalid privilege type SELECT for schema" in details["migrate.steps"]
    # Six of the ten listed tables (and order_items) never move; audit is never built.
    for table in ("suppliers", "collections", "appointments", "measurements"):
        assert f"`public.{table}`: expected in" in details["layout.as_planned"]
    assert "new table `audit.audit_log` does not exist" in details["layout.as_planned"]
    # A schema grant gives nothing on the tables inside it.
    assert "kct_app cannot SELECT on tenant_shared.products" in details["privileges.tried"]
    # Function bodies name moved tables without a schema.
    assert "customer_lifetime_value" in details["dependencies.resolve"]
    # Open sessions break at the move, not at the search_path change.
    assert "fails from up/003_move_tables.sql on" in details["sessions.keep_working"]
    # The rollback leaves the schemas and the database's search_path behind.
    assert "unexpected schema `tenant_shared`" in details["rollback.exact"]
    assert "search_path" in details["rollback.exact"]
    assert checks["data.unchanged"]["verdict"] == "pass"
    # Every check ran: a failing step did not end the search.
    assert len(checks) >= 15
    assert "NOT SAFE" in done.stdout


@pytest.mark.slow
def test_corrected_plan_is_safe(tmp_path: Path) -> None:
    done = _harness("gate", "--plan", str(PLANS / "kct"), "--reports", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["verdict"] == "safe"
    assert report["failed"] == []
    assert "SAFE" in done.stdout
    # The report's own reader takes it, traffic timeline included, step by step.
    traffic = parse_gate(report).traffic
    assert traffic is not None
    kct_steps = sorted(p.name for p in (PLANS / "kct" / "up").iterdir())
    migrated = [s.step for s in traffic.steps if s.phase == "migrate"]
    assert migrated[: len(kct_steps)] == [f"up/{name}" for name in kct_steps]
    # Where the time went: every phase, each step and each check, adding up to the run.
    phases = report["phases"]
    names = [p["name"] for p in phases if p["kind"] == "phase"]
    assert names == [
        "start cluster", "load", "traffic logins", "backup", "traffic start", "migrate", "rollback",
        "migrate again", "teardown",
    ]  # fmt: skip
    steps = [p["name"] for p in phases if p["kind"] == "step"]
    assert steps[: len(kct_steps)] == [f"up/{name}" for name in kct_steps]
    assert {c["name"] for c in report["checks"]} == {
        p["name"] for p in phases if p["kind"] == "check"
    }
    load = next(p for p in phases if p["name"] == "load")
    assert load["rows"] == sum(LEGACY_COUNTS.values())
    assert load["rows_per_second"] > 0
    assert load["mb_per_second"] > 0
    # gate.json rounds the total to 0.01 s and each row to 0.001 s.
    rounding = 0.005 + 0.0005 * len(phases)
    total = sum(p["seconds"] for p in phases)
    assert 0.9 * report["seconds"] <= total <= report["seconds"] + rounding
    assert 'id="phases"' in (tmp_path / "index.html").read_text()


def test_rollback_that_forgets_a_table_is_rejected(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = _copy_plan(tmp_path)
    _edit(
        plan / "down/002_move_tables.sql",
        "ALTER TABLE tenant_shared.suppliers SET SCHEMA public;",
        "",
    )
    _edit(plan / "down/002_move_tables.sql", "DROP VIEW public.suppliers;", "")
    report = _gate(plan, cluster, legacy_database, tmp_path)
    assert "rollback.exact" in _failed(report)
    details = "\n".join(_check(report, "rollback.exact").details)
    assert "`public.suppliers`: expected in public, found in tenant_shared" in details
    # The schema cannot be dropped while the forgotten table is still inside it.
    assert "cannot drop schema tenant_shared" in "\n".join(_check(report, "rollback.steps").details)


def test_migration_that_drops_a_column_is_rejected(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = _copy_plan(tmp_path)
    _edit(
        plan / "up/002_move_tables.sql",
        "ALTER TABLE public.customers SET SCHEMA tenant_kct;",
        "ALTER TABLE public.customers SET SCHEMA tenant_kct;\n"
        "ALTER TABLE tenant_kct.customers DROP COLUMN phone;",
    )
    report = _gate(plan, cluster, legacy_database, tmp_path)
    assert {"tables.intact", "data.unchanged", "rollback.exact"} <= _failed(report)
    assert "`tenant_kct.customers`: column phone is gone" in _check(report, "tables.intact").details
    assert any(
        "tenant_kct.customers" in d and "contents changed" in d
        for d in _check(report, "data.unchanged").details
    )


def test_grants_missing_one_privilege_are_rejected(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = _copy_plan(tmp_path)
    _edit(
        plan / "up/003_grant_privileges.sql",
        "GRANT SELECT, INSERT, UPDATE, DELETE\n    ON ALL TABLES IN SCHEMA",
        "GRANT SELECT, INSERT, UPDATE\n    ON ALL TABLES IN SCHEMA",
    )
    report = _gate(plan, cluster, legacy_database, tmp_path)
    assert _failed(report) == {"privileges.tried"}
    details = _check(report, "privileges.tried").details
    assert (
        "kct_app cannot DELETE on tenant_kct.orders: permission denied for table orders" in details
    )
    assert all(" DELETE " in d for d in details)


def test_syntax_error_is_rejected_with_its_line(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = _copy_plan(tmp_path)
    _edit(
        plan / "up/002_move_tables.sql",
        "ALTER TABLE public.suppliers SET SCHEMA tenant_shared;",
        "ALTER TABLE public.suppliers SET SCHEM tenant_shared;",
    )
    report = _gate(plan, cluster, legacy_database, tmp_path)
    steps = _check(report, "migrate.steps")
    assert steps.verdict == "fail"
    assert any(
        d.startswith("up/002_move_tables.sql line 9: syntax error") and "42601" in d
        for d in steps.details
    ), steps.details


def test_corrected_plan_passes_on_the_shared_cluster(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    report = _gate(PLANS / "kct", cluster, legacy_database, tmp_path)
    assert _failed(report) == set(), [str(c) for c in report.checks if not c.passed]
    names = {c.name for c in report.checks}
    assert {
        "backup.restores",
        "migrate.steps",
        "layout.as_planned",
        "data.unchanged",
        "privileges.tried",
        "dependencies.resolve",
        "replica.matches_primary",
        "sessions.keep_working",
        "sessions.new_sessions_work",
        "rollback.exact",
        "rollback.exact_on_replica",
        "roundtrip.migrate_again",
    } <= names
