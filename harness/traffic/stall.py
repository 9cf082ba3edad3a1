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

Only the part of a wait the migration answers for is judged. While the step
itself queues for a table's lock (behind an application transaction), the requests
queued behind it wait on that transaction: how long depends on the
application's transactions and the machine's load, and the runner cuts each
such wait at ``[runner] lock_timeout`` and retries. On the replica, a replayed
lock is held until the replica replays the commit: a reader waits there as long
as the migration held the lock on the primary, and longer only when replay
lags, which is the machine's load. Those parts are reported beside the verdict,
never judged: judging them made correct plans flip between runs on a busy
machine (:meth:`harness.traffic.sampler.LockSampler.held`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from harness.invariants.result import Check
from harness.plan.workload import StallLimits
from harness.traffic.clients import Request
from harness.traffic.sampler import LockWait

__all__ = ["check_stall"]

_NOT_JUDGED = (
    "it queued for a lock itself (cut by [runner] lock_timeout, then retried) or the "
    "replica replayed its lock late"
)


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


def _offender(
    step: str, pairs: list[tuple[LockWait, float]], requests: list[Request], bound: float
) -> str:
    worst, held_for = pairs[0]
    held = (
        f"held as {worst.held.replace('+', ' and ')}"
        if worst.held
        else "the migration queued for it ahead of the request"
        + (f", itself waiting behind `{worst.behind[:160]}`" if worst.behind else "")
    )
    replayed = worst.server == "replica"
    where = " on the replica (WAL replay of the primary's lock)" if replayed else ""
    more = f"; {len(pairs)} requests waited longer than {_ms(bound)}" if len(pairs) > 1 else ""
    queued = worst.seconds - held_for
    also = f" ({_ms(queued)} more while {_NOT_JUDGED})" if queued >= 0.0005 else ""
    return (
        f"{step}: {_who(_request_of(worst, requests))} waited {_ms(held_for)}{also} for "
        f"{worst.lock}{where}, {held}"
        + (f", while the step ran `{worst.statement[:160]}`" if worst.statement else "")
        + more
    )


def check_stall(
    waits: list[LockWait],
    requests: list[Request],
    *,
    limits: StallLimits,
    held: Callable[[LockWait], float] | None = None,
    gaps: Sequence[str] = (),
) -> Check:
    """Each step against the plan's bound on the application's waits for its locks.

    ``held(wait)``: the part of a wait on the migration it answers for
    (:meth:`harness.traffic.sampler.LockSampler.held`); without it, the whole wait.
    ``gaps``: the samples the sampler lost ("phase: error"); a pass over them is a
    warning, since a wait in a lost moment was not seen.
    """
    bound = limits.lock_wait
    # Each wait on the migration with the part of it the migration held the lock.
    ours = sorted(
        ((w, held(w) if held else w.seconds) for w in waits if w.blocker_kind == "migration"),
        key=lambda pair: -pair[1],
    )
    by_step: dict[str, list[tuple[LockWait, float]]] = {}
    for w, part in ours:
        if part > bound:
            by_step.setdefault(w.step or w.phase, []).append((w, part))
    offenders = [_offender(step, pairs, requests, bound) for step, pairs in by_step.items()]
    others = [w for w in waits if w.blocker_kind != "migration" and w.seconds > bound]
    note = ""
    if ours:
        longest, part = ours[0]
        note = f"; the longest wait on a lock the migration held was {_ms(part)}, in " + (
            longest.step or longest.phase
        )
        unjudged = max(w.seconds - part for w, part in ours)
        if unjudged >= 0.0005:
            note += (
                f"; requests also waited up to {_ms(unjudged)} more behind the migration "
                f"while {_NOT_JUDGED}, not judged"
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
    if gaps:
        note += (
            f"; the lock sampler lost {len(gaps)} of its samples (first in {gaps[0]}), so a "
            "wait in those moments was not seen"
        )
    check = Check.of(
        "traffic.stall",
        offenders=offenders,
        ok=f"no application request waited more than {_ms(bound)} on a lock the migration held "
        f"while it worked, among {len(waits):,} lock waits sampled{note}",
        failed=f"application requests waited more than {_ms(bound)} ([workload.stall] "
        "lock_wait) on locks the migration held: hold them for less time (split the step, "
        "build indexes CONCURRENTLY, add constraints NOT VALID and validate later) or take "
        f"them where the application does not read and write{note}",
    )
    return replace(check, verdict="warn") if gaps and check.passed else check
