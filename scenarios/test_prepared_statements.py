"""``sessions.prepared_statements`` on a real primary, replica and PgBouncer.

A statement prepared before a step that changes its result type fails after the
step (SQLSTATE 0A000) in the sessions that hold it, though the same text prepared
afresh works; the corrected plan leaves every prepared statement valid; and a
driver that prepares, behind the PgBouncer writer's transaction pool of a
PgBouncer without prepared-statement support, is named whatever the steps do.
(``plans/kct`` as shipped passes every check: scenarios/test_gate.py.)
"""

from __future__ import annotations

from pathlib import Path

from planting import PLANS, Edit, planted, run_gate

from harness.cluster import Cluster
from harness.invariants.prepared import PREPARED_SINCE, pgbouncer_version
from harness.testing.fix_legacy import LegacyDatabase

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
