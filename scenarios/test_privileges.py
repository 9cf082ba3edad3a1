"""Privileges tried on a live database: nothing another session did is ever rewound.

The probes INSERT rows (defaults run, so serial and identity sequences advance) in
transactions that are rolled back. Sequences are restarted inside each probe
transaction, so its rollback restores them, and a session taking values at the
same time keeps every value it took: the sequence never goes back below them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from harness.databases import connect
from harness.invariants import probe_privileges
from harness.plan import load_plan
from harness.runner import Runner
from harness.testing.fix_legacy import LegacyDatabase

KCT = Path(__file__).resolve().parent.parent / "plans" / "kct"
SEQUENCE = "tenant_kct.orders_order_number_seq"


def _last_value(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(f"SELECT last_value FROM {SEQUENCE}").fetchone()  # noqa: S608
    assert row is not None
    return int(str(row[0]))


def test_probes_leave_sequences_as_they_were_and_rewind_no_other_session(
    legacy_database: LegacyDatabase,
) -> None:
    plan = load_plan(KCT)
    dsn = legacy_database.endpoints.primary
    with Runner(plan, dsn) as runner:
        runner.migrate()
    before = _last_value(dsn)

    # Alone: the INSERT probes into orders drew numbers, and the rollback gave them back.
    with connect(dsn) as conn:
        check = probe_privileges(conn, plan.privileges)
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
            check = probe_privileges(conn, plan.privileges)
    finally:
        stop.set()
        drawer.join(timeout=60)
    assert check.verdict == "pass", check
    assert taken == sorted(set(taken))
    assert taken[0] >= before  # the value it would have drawn with no probe running
    assert _last_value(dsn) == taken[-1]
