"""The gate's comparisons with the database as it was, made while the application writes.

Each comparison is read while the application's traffic waits (``TrafficRun.settled``),
and held against the baseline as those writes left it (``harness.ledger``): after
the rollback on the primary and on the replica, and after migrating again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from harness.catalog import IGNORE_DATA, IGNORE_SEQUENCE_VALUES, Fingerprint, diff, fingerprint
from harness.cluster import Endpoints
from harness.connections import connect
from harness.invariants import Check, check_data, check_same
from harness.ledger import Accounting
from harness.plan import Plan
from harness.runner import StepOutcome
from harness.traffic import TrafficRun

__all__ = ["fingerprint_of", "replica_check", "rollback_checks", "roundtrip_check"]


def fingerprint_of(dsn: str) -> Fingerprint:
    with connect(dsn) as conn:
        return fingerprint(conn)


def replica_check(
    name: str,
    expected: Fingerprint,
    endpoints: Endpoints,
    *,
    ok: str,
    failed: str,
    accounting: Accounting | None = None,
    kept_roles: tuple[str, ...] = (),
) -> Check:
    """The replica against ``expected``; sequences run ahead on a standby, so not their values.

    With ``accounting``, ``expected`` is the baseline, as the application's writes left it.
    """
    actual = fingerprint_of(endpoints.replica)
    if accounting is not None:
        expected, actual = accounting.align(expected, actual)
    return check_same(
        name,
        expected,
        actual,
        ignore=(IGNORE_SEQUENCE_VALUES,),
        ok=ok,
        failed=failed,
        kept_roles=kept_roles,
    )


def rollback_checks(
    run: TrafficRun,
    plan: Plan,
    baseline: Fingerprint,
    endpoints: Endpoints,
    *,
    wait_for_replica: Callable[[], None] | None,
) -> Iterator[Check]:
    """``rollback.exact``, then (with a replica) ``rollback.exact_on_replica``."""
    account = run.accounting
    with run.settled():
        expected, actual = account.align(baseline, fingerprint_of(endpoints.primary))
        rewound = account.sequences(actual, endpoints.primary)
    exact = check_same(
        "rollback.exact",
        expected,
        actual,
        ok="after rollback the primary is exactly as before the migration",
        failed="the rollback does not restore the database as it was",
        kept_roles=plan.keeps_roles,
    )
    yield account.judge(exact, window="rollback", extra=rewound)
    if wait_for_replica is None:
        return
    with run.settled():
        wait_for_replica()
        on_replica = replica_check(
            "rollback.exact_on_replica",
            baseline,
            endpoints,
            ok="after rollback the replica is exactly as before the migration",
            failed="the rollback does not restore the replica as it was",
            accounting=account,
            kept_roles=plan.keeps_roles,
        )
    yield account.judge(on_replica)


def roundtrip_check(
    run: TrafficRun,
    again: list[StepOutcome],
    migrated: Fingerprint,
    *,
    plan: Plan,
    baseline: Fingerprint,
    dsn: str,
) -> Check:
    """The structure of the first migration, and the data of the baseline as the
    application's writes left it."""
    accounting = run.accounting
    failed = [f"{o.step.label} failed the second time" for o in again if not o.applied]
    with run.settled(), connect(dsn) as conn:
        now = fingerprint(conn)
        data = check_data(plan.layout, *accounting.align(baseline, now), conn)
        rewound = accounting.sequences(now, dsn)
    first, now = accounting.align(migrated, now)
    differences = [
        f"second migration differs: {d}" for d in diff(first, now, ignore=(IGNORE_DATA,))
    ]
    data_offenders = [f"second migration: {d}" for d in data.details if data.verdict == "fail"]
    return accounting.judge(
        Check.of(
            "roundtrip.migrate_again",
            offenders=failed + differences + data_offenders,
            ok="migrate → rollback → migrate gives the database of the first migration",
            failed="migrating again after the rollback does not give the same database",
        ),
        window="again",
        extra=rewound,
    )
