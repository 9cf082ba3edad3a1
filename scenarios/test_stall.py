"""``traffic.stall`` judges who blocked whom: a step that holds the shop's table for 0.7 sec
stalls it, a step that runs for 2 sec without a conflicting lock does not, whatever the
machine's load. Each test gates the corrected plan with one planted step, traffic on."""

from __future__ import annotations

import shutil
from pathlib import Path

from planting import run_gate

from harness.cluster import Cluster
from harness.gate import GateReport
from harness.testing.fix_legacy import LegacyDatabase

PLANS = Path(__file__).resolve().parent.parent / "plans"
CLIENTS = 8


def _gate_with_steps(
    tmp_path: Path, cluster: Cluster, legacy_database: LegacyDatabase, steps: dict[str, str]
) -> GateReport:
    plan = tmp_path / "plan"
    shutil.copytree(PLANS / "kct", plan)
    for name, up in steps.items():
        (plan / "up" / name).write_text(up)
        (plan / "down" / name).write_text("-- nothing to undo\n")
    return run_gate(
        plan, cluster, legacy_database.endpoints, tmp_path, traffic=True, clients=CLIENTS
    )


def test_a_hot_table_held_700_ms_stalls_and_a_2_sec_step_blocking_nobody_does_not(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """One gate, three planted steps (one gate costs less than three): the verdict names
    the short steps that held the shop's table, or rows of it, and not the long one that
    held nothing."""
    hold, sleep, rows = (
        "007_hold_products.sql",
        "008_slow_but_harmless.sql",
        "009_hold_customers_rows.sql",
    )
    report = _gate_with_steps(
        tmp_path,
        cluster,
        legacy_database,
        {
            hold: "LOCK TABLE tenant_shared.products IN ACCESS EXCLUSIVE MODE;\n"
            "SELECT pg_sleep(0.7);\n",
            sleep: "SELECT pg_sleep(2);\n",
            # Row locks only: every customer locked, none changed, for 0.7 sec. The
            # application's writes of a customer (and of rows whose foreign key names
            # one) wait on the step's transaction.
            rows: "SELECT count(*) FROM (SELECT 1 FROM tenant_kct.customers FOR UPDATE) locked;\n"
            "SELECT pg_sleep(0.7);\n",
        },
    )
    failed = {c.name for c in report.checks if c.verdict == "fail"}
    assert failed == {"traffic.stall"}, [str(c) for c in report.checks if not c.passed]
    stall = next(c for c in report.checks if c.name == "traffic.stall")
    # Named: the step, the lock (mode, type), the table and the statement; no other step.
    by_step = {d.split(": ", 1)[0]: d for d in stall.details}
    assert set(by_step) == {f"up/{hold}", f"up/{rows}"}, stall.details
    detail = by_step[f"up/{hold}"]
    assert "(relation lock) on tenant_shared.products" in detail, detail
    assert "held as AccessExclusiveLock" in detail, detail
    assert "while the step ran `LOCK TABLE" in detail, detail
    assert "SELECT pg_sleep(0.7);" in detail, detail
    # Past the bound, and about the 0.7 sec the lock was held (replay may add a little).
    waited = int(detail.split(" waited ", 1)[1].split(" ms", 1)[0])
    assert 200 < waited < 5000, detail
    row_wait = by_step[f"up/{rows}"]
    assert "(transactionid lock), held as ExclusiveLock" in row_wait, row_wait
    # The long step ran its two seconds with traffic flowing through it.
    phases = {p["phase"]: p for p in report.context["traffic"]["phases"]}  # type: ignore[index]
    assert phases[f"up/{sleep}"]["requests"] > 0
    steps = {s["step"]: s for s in report.context["traffic"]["steps"]}  # type: ignore[index]
    assert steps[f"up/{sleep}"]["seconds"] >= 2.0
