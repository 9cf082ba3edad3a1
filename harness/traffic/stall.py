"""``traffic.stall``: a step stalls the application when a request waited on the migration.

Latency moves with the machine: the same plan is slower on a busy machine
before, during and after the migration, and with a hundred baseline requests
their "p99" is the single slowest one. A verdict on latency therefore flips with
the load. What does not move is who blocked whom: a request that waited on a
lock the migration held (or was queued for) waited because of the plan, on a
quiet machine as on a busy one; a step that runs for seconds without taking a
lock that conflicts with the application's reads and writes blocks nobody. So
the verdict is on the lock waits the sampler attributed to the migration
(:class:`harness.traffic.sampler.LockWait`), against the plan's
``[workload.stall] lock_wait`` (200 ms by default); latency percentiles stay in
the report.

A wait's duration is measured from ``pg_locks.waitstart`` and is a lower bound
of the real one (the sampler sees it last up to 50 ms before it ends), so a
failure is never an artefact of sampling.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.invariants.result import Check
from harness.plan.workload import StallLimits
from harness.traffic.clients import Request
from harness.traffic.sampler import LockWait

__all__ = ["check_stall"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _request_of(wait: LockWait, requests: Iterable[Request]) -> Request | None:
    """The application request that waited: same backend, in flight when last seen."""
    return next(
        (r for r in requests if r.pid == wait.pid and r.start <= wait.seen_at <= r.end), None
    )


def _who(request: Request | None) -> str:
    if request is None:
        return "an application request"
    return f"{request.query} (as {request.role or 'the harness'}, via PgBouncer {request.path})"


def _offender(step: str, waits: list[LockWait], requests: list[Request], bound: float) -> str:
    worst = waits[0]
    held = (
        f"held as {worst.held.replace('+', ' and ')}"
        if worst.held
        else "the migration queued for it ahead of the request"
        + (f", itself waiting behind `{worst.behind[:160]}`" if worst.behind else "")
    )
    replayed = worst.server == "replica"
    where = " on the replica (WAL replay of the primary's lock)" if replayed else ""
    more = f"; {len(waits)} requests waited longer than {_ms(bound)}" if len(waits) > 1 else ""
    return (
        f"{step}: {_who(_request_of(worst, requests))} waited {_ms(worst.seconds)} for "
        f"{worst.lock}{where}, {held}"
        + (f", while the step ran `{worst.statement[:160]}`" if worst.statement else "")
        + more
    )


def check_stall(waits: list[LockWait], requests: list[Request], *, limits: StallLimits) -> Check:
    """Each step against the plan's bound on the application's waits for its locks."""
    bound = limits.lock_wait
    ours = [w for w in waits if w.blocker_kind == "migration"]
    by_step: dict[str, list[LockWait]] = {}
    for w in sorted(ours, key=lambda w: -w.seconds):
        if w.seconds > bound:
            by_step.setdefault(w.step or w.phase, []).append(w)
    offenders = [_offender(step, ws, requests, bound) for step, ws in by_step.items()]
    longest = max(ours, key=lambda w: w.seconds, default=None)
    others = [w for w in waits if w.blocker_kind != "migration" and w.seconds > bound]
    note = ""
    if longest is not None:
        note = f"; the longest wait on the migration was {_ms(longest.seconds)}, in " + (
            longest.step or longest.phase
        )
    if others:
        worst = max(others, key=lambda w: w.seconds)
        note += (
            f"; {len(others)} longer waits were on others, not the plan (the longest "
            f"{_ms(worst.seconds)} behind {worst.blocker})"
        )
    if limits.ignored:
        note += (
            f"; [workload.stall] {', '.join(limits.ignored)} no longer judge (latency is "
            "in the report): set lock_wait instead"
        )
    return Check.of(
        "traffic.stall",
        offenders=offenders,
        ok=f"no application request waited more than {_ms(bound)} on a lock the migration "
        f"held or queued for, among {len(waits):,} lock waits sampled{note}",
        failed=f"application requests waited more than {_ms(bound)} ([workload.stall] "
        "lock_wait) on locks the migration held: hold them for less time (split the step, "
        "build indexes CONCURRENTLY, add constraints NOT VALID and validate later) or take "
        f"them where the application does not read and write{note}",
    )
