"""The lock sampler on a real server: a lost sample is said, and sampling goes on.

``traffic.stall`` passes a step when the sampler saw no wait on the migration: a
sampler that stopped at its first error (a replica cancelling its query while it
replays a step, a dropped connection) would pass every stall after it, silently.
"""

from __future__ import annotations

from waiting import wait_until

from harness.databases import connect
from harness.plan.workload import StallLimits
from harness.testing.fix_legacy import LegacyDatabase
from harness.traffic.clients import Timeline
from harness.traffic.sampler import LockSampler
from harness.traffic.stall import check_stall

_SAMPLERS = "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcutover lock sampler'"


def test_a_lost_sample_is_recorded_and_sampling_goes_on(
    legacy_database: LegacyDatabase,
) -> None:
    timeline = Timeline()
    timeline.mark("up/001_move.sql", step=True)
    primary = legacy_database.endpoints.primary
    sampler = LockSampler([primary], timeline, migration="pgcutover shop ")
    with connect(primary) as conn:

        def samplers() -> set[int]:
            return {int(str(r[0])) for r in conn.execute(_SAMPLERS).fetchall()}

        sampler.start()
        try:
            wait_until(lambda: bool(samplers()), timeout=10, what="the sampler's session")
            (first,) = samplers()
            conn.execute("SELECT pg_terminate_backend(%s)", (first,))
            wait_until(
                lambda: bool(samplers() - {first}), timeout=10, what="the sampler reconnecting"
            )
        finally:
            sampler.stop()
    assert sampler.gaps, "the lost sample was not recorded"
    assert sampler.gaps[0].startswith("up/001_move.sql: "), sampler.gaps
    check = check_stall([], [], limits=StallLimits(), gaps=sampler.gaps)
    assert check.verdict == "warn", check
    assert f"the lock sampler lost {len(sampler.gaps)} of its samples" in check.reason
