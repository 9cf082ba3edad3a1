"""A database nobody shaped for the gate: its correct plan passes, its defects do not.

The booking service (``fixtures/booking_service``) is loaded from a dump that names
roles it never creates, keeps a mixed-case table in a schema of its own, and has an
extension type behind a domain, an enum, identity and generated columns, a
partitioned table whose partitions move with it, row-level security and a column
grant. The whole gate runs on it as a team would run it, traffic included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from planting import Edit, copy_of, failed, planted, run_gate, seeded_template

from harness.cluster import Cluster, Endpoints
from harness.gate import run_gate as gate
from harness.plan import load_plan

PLAN = Path(__file__).resolve().parent / "fixtures" / "booking_service" / "plan"


def test_its_correct_plan_passes_the_whole_gate_under_traffic() -> None:
    checks: list[str] = []
    report = gate(load_plan(PLAN), progress=checks.append)
    assert [c.name for c in report.checks if c.verdict == "fail"] == []
    assert report.context["traffic"]["failed"] == 0  # type: ignore[index]
    assert any("created svc_owner, svc_ro, svc_rw (NOLOGIN)" in m for m in checks), checks
    by_name = {c.name: c for c in report.checks}
    # The partitions moved with their table; the application never names them.
    assert not any("bookings_2026" in q for q in by_name["sessions.keep_working"].details)
    assert "svc_ro, svc_rw logged in through the PgBouncer writer" in (
        by_name["privileges.tried"].reason
    )


@pytest.fixture
def booking_endpoints(cluster: Cluster) -> Iterator[Endpoints]:
    with (
        seeded_template(cluster, PLAN / "legacy.sql", prefix="booking") as template,
        copy_of(cluster, template, prefix="booking") as endpoints,
    ):
        yield endpoints


def test_a_partition_left_behind_is_caught(
    cluster: Cluster, booking_endpoints: Endpoints, tmp_path: Path
) -> None:
    plan = planted(
        PLAN,
        tmp_path / "plan",
        (
            Edit("up/002_move.sql", "ALTER TABLE public.bookings_2027 SET SCHEMA stay;\n", ""),
            Edit("down/002_move.sql", "ALTER TABLE stay.bookings_2027 SET SCHEMA public;\n", ""),
        ),
    )
    found = failed(run_gate(plan, cluster, booking_endpoints, tmp_path))
    assert set(found) == {"layout.as_planned"}, found
    assert "`public.bookings_2027`: expected in stay, found in public" in found["layout.as_planned"]


def test_a_domain_loosened_and_a_function_rewritten_are_caught_though_the_rollback_restores_them(
    cluster: Cluster, booking_endpoints: Endpoints, tmp_path: Path
) -> None:
    """Both put back exactly by the down step, so rollback.exact cannot see them: the
    migrated database lets an e-mail without "@" in, and counts another night's rooms."""
    plan = planted(
        PLAN,
        tmp_path / "plan",
        (
            Edit(
                "up/002_move.sql", None, "ALTER DOMAIN public.email DROP CONSTRAINT email_check;\n"
            ),
            Edit(
                "down/002_move.sql",
                None,
                "ALTER DOMAIN public.email ADD CONSTRAINT email_check"
                " CHECK (VALUE::text ~ '@'::text);\n",
            ),
            Edit("up/002_move.sql", "AND b.state <> 'cancelled')", "AND b.state = 'held')"),
        ),
    )
    found = failed(run_gate(plan, cluster, booking_endpoints, tmp_path))
    assert set(found) == {"tables.intact", "reads.same_answers"}, found
    assert found["tables.intact"] == [
        "domain `public.email`: CONSTRAINT email_check CHECK (((VALUE)::text ~ '@'::text)) is gone"
    ]
    [answer] = found["reads.same_answers"]
    assert answer.startswith("free_rooms (as svc_ro): the same row counted, other values: ("), (
        answer
    )
