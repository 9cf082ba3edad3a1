"""Requests the application's own bound cancelled, told apart by who blocked them.

A request that runs past the workload's ``request_timeout`` is cancelled, as the
application's driver would cancel it, and fails. Whether that is the plan's doing
depends on why it ran that long. A request that waited on a lock the migration
held (the lock sampler saw it: :class:`harness.traffic.sampler.LockWait`) was
stopped by the plan, on a quiet machine as on a busy one: it stays a failure
(and ``traffic.stall``'s). One that no lock of the migration held was slow for
another reason: the plan made the query slow (an index gone, a view that scans),
or this machine was busy (the gate's checks, the plan's materialized views and
the traffic share its cores; at scale 1000 a scan of 3.4 M rows did not fit in
10 s while a step ran beside it). Which one is measured, not guessed: once the
traffic has stopped, one request of each such query runs again alone, with the
same parameters, as its role on its path, rolled back. If it fits the bound
there, the machine was the cause, and the requests are reported, not failed; if
it does not, the database the plan left makes it too slow, and they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from harness.traffic.clients import Request
from harness.traffic.sampler import LockWait

__all__ = ["Rerun", "cancelled_unblocked", "timed_out"]

_QUERY_CANCELED = "57014"

#: runs requests again alone (``Traffic.again_alone``)
Rerun = Callable[[Sequence[Request]], list[Request]]


def timed_out(request: Request) -> bool:
    """Cancelled by the statement timeout the traffic sets on every request."""
    return (
        not request.ok
        and request.sqlstate == _QUERY_CANCELED
        and "statement timeout" in request.message
    )


def _held_by_migration(request: Request, waits: Iterable[LockWait]) -> bool:
    return any(
        w.pid == request.pid
        and w.blocker_kind == "migration"
        and request.start <= w.seen_at <= request.end
        for w in waits
    )


def cancelled_unblocked(
    requests: Sequence[Request], waits: Sequence[LockWait], rerun: Rerun
) -> dict[int, Request]:
    """``id`` of each request the bound cancelled while no lock of the migration held it,
    mapped to the same query's run alone afterwards (one per query, role and path)."""
    unblocked = [r for r in requests if timed_out(r) and not _held_by_migration(r, waits)]
    first: dict[tuple[str, str | None, str], Request] = {}
    for r in unblocked:
        first.setdefault((r.query, r.role, r.path), r)
    again = dict(zip(first, rerun(list(first.values())), strict=False))
    return {
        id(r): again[(r.query, r.role, r.path)]
        for r in unblocked
        if (r.query, r.role, r.path) in again
    }
