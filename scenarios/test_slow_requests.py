"""A request the application's own bound cancelled is the plan's failure only when the
database the plan left is too slow for it, or a lock of the migration held it.

Two reads sleep while the comment on schema ``public`` names them (no lock is
involved): the plan names one for a step's span and no longer in the next step,
the other it leaves named. Both time out in the gate's traffic; run again alone after the
gate, the first fits the workload's ``request_timeout`` (the cause is gone: on a
busy machine, the load) and the second does not (the plan made it slow).
"""

from __future__ import annotations

from pathlib import Path

from planting import PLANS, Edit, failed, new_step, planted, run_gate

from harness.cluster import Cluster
from harness.testing.fix_legacy import LegacyDatabase

_SLEEP = (
    "SELECT pg_sleep(CASE WHEN position('{name}' IN coalesce(obj_description("
    "'public'::regnamespace, 'pg_namespace'), '')) > 0 THEN 0.5 ELSE 0 END)"
)


def _query(name: str) -> str:
    return (
        f'\n[[workload.queries]]\nname = "{name}"\nrole = "kct_readonly"\nkind = "read"\n'
        f'weight = 2\nparams = "SELECT 1 AS one"\nsql = "{_SLEEP.format(name=name)}"\n'
    )


def _named(*names: str) -> str:
    return f"COMMENT ON SCHEMA public IS '{' '.join(names) or 'standard public schema'}';\n"


SLOW = (
    Edit("plan.toml", 'baseline = "1s"\n', 'baseline = "1s"\nrequest_timeout = "200ms"\n'),
    Edit("plan.toml", None, _query("slow_for_a_step")),
    Edit("plan.toml", None, _query("slow_after")),
    *new_step(7, "slow", up=_named("slow_for_a_step", "slow_after"), down=_named()),
    *new_step(8, "fast", up=_named("slow_after"), down=_named("slow_for_a_step", "slow_after")),
)


def test_a_timeout_no_lock_caused_fails_only_where_the_query_stays_slow_alone(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = planted(PLANS / "kct", tmp_path / "plan", SLOW)
    report = run_gate(plan, cluster, legacy_database.endpoints, tmp_path, traffic=True)
    found = failed(report)
    assert set(found) == {"traffic.no_errors"}, found
    [detail] = found["traffic.no_errors"]
    assert detail.startswith("slow_after as kct_readonly via "), detail
    assert "canceling statement due to statement timeout [SQLSTATE 57014]" in detail, detail
    assert "; run again alone after the gate, no lock of the migration holding it, it " in detail
    [check] = [c for c in report.checks if c.name == "traffic.no_errors"]
    assert "while no lock of the migration held them, and each such query then ran alone " in (
        check.reason
    ), check.reason
    assert "(slow_for_a_step in " in check.reason, check.reason
