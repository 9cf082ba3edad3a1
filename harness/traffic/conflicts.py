"""``traffic.recovery_conflicts``: reads the replica cancelled while it replayed a step.

A hot standby replaying a step's ACCESS EXCLUSIVE lock (an ``ALTER TABLE``, a
``DROP``, a table move) or its cleanup waits at most
``max_standby_streaming_delay`` for the standby's queries in its way, then
cancels them: "canceling statement due to conflict with recovery" (SQLSTATE
40001, or 40P01 when replay and a standby query would wait on each other). The
application's router (:mod:`harness.routing`) treats such an error as the
replica's, not the query's, and runs the read again on the primary, so the user
sees nothing; the traffic's reads do the same (:mod:`harness.traffic.clients`).

What the plan is told, per step: a conflict the router absorbed is a warning
(the reads landed on the primary for a moment: load the plan may not expect), a
conflict that reached the application is a failure; both with the settings that
reduce them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from harness.invariants.result import Check, Verdict
from harness.routing.errors import UNAVAILABLE_KINDS, classify

if TYPE_CHECKING:
    from harness.traffic.clients import Request, Timeline

__all__ = ["check_recovery_conflicts", "is_recovery_conflict", "replica_side"]

# A standby's cancellation of a query in replay's way: serialization_failure for a lock,
# snapshot, tablespace or buffer pin, deadlock_detected for a buffer deadlock with replay
# (postgres.c, ProcessInterrupts; PostgreSQL 9.x to 17).
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
SETTINGS = (
    "hot_standby_feedback = on keeps on the primary the rows the replica's queries still "
    "read (it does not help with locks); max_standby_streaming_delay is how long replay "
    "waits for the replica's queries before it cancels them (longer: fewer cancellations, "
    "more replica lag)"
)


def is_recovery_conflict(exc: psycopg.Error) -> bool:
    """A read the replica cancelled for replay: by its message, or by the SQLSTATE a
    read-only transaction on a standby gets only from replay."""
    message = str(exc).lower()
    return "conflict with recovery" in message or exc.sqlstate in _CONFLICT_SQLSTATES


def replica_side(exc: psycopg.Error, *, broken: bool) -> bool:
    """Whether the router retries a failed replica read on the primary: the replica went
    away or refused (the routing library's classification), or replay cancelled it."""
    return broken or classify(exc) in UNAVAILABLE_KINDS or is_recovery_conflict(exc)


def check_recovery_conflicts(requests: list[Request], timeline: Timeline) -> Check:
    """Per step: reads the replica cancelled, retried on the primary or failed."""
    retried: dict[str, list[Request]] = {}
    reached: dict[str, list[Request]] = {}
    for r in requests:
        if not r.conflict:
            continue
        step = timeline.step_of(timeline.phase_at(r.conflict_at))
        (retried if r.ok else reached).setdefault(step, []).append(r)
    details = []
    for step in dict.fromkeys([*reached, *retried]):
        bad, absorbed = reached.get(step, []), retried.get(step, [])
        first = (bad or absorbed)[0]
        parts = []
        if bad:
            parts.append(f"{len(bad)} reached the application")
        if absorbed:
            parts.append(f"{len(absorbed)} retried on the primary by the router, unseen")
        queries = ", ".join(sorted({r.query for r in bad or absorbed}))
        details.append(
            f"{step}: the replica cancelled {len(bad) + len(absorbed)} reads ({queries}) while "
            f"replaying it: {'; '.join(parts)} ({first.conflict} [SQLSTATE "
            f"{first.conflict_sqlstate}])"
        )
    verdict: Verdict
    if reached:
        verdict = "fail"
        reason = (
            f"{sum(map(len, reached.values()))} reads cancelled by the replica's recovery "
            "conflicts reached the application: route them through a router that retries "
            f"replica-side errors on the primary, or reduce the conflicts: {SETTINGS}"
        )
    elif retried:
        verdict = "warn"
        reason = (
            f"the replica cancelled {sum(map(len, retried.values()))} reads while replaying "
            "the steps named; the router retried them on the primary and the application "
            f"saw no error, but the primary took their load: {SETTINGS}"
        )
    else:
        return Check(
            "traffic.recovery_conflicts",
            "pass",
            "the replica cancelled none of the application's reads while replaying the steps",
        )
    return Check("traffic.recovery_conflicts", verdict, reason, tuple(details))
