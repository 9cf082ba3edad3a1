"""The verdicts of the application's traffic: errors, stalls, lost writes, old connections.

The data comparisons hold the database against the baseline as the application's
writes left it (``harness.ledger``), so no table is left out because the
application writes it. Where a server cannot keep that ledger (no logical
decoding), :func:`check_writes_kept` falls back to each write query's own
``verify`` query, and the comparisons name the tables they left out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import psycopg

from harness.connections import connect
from harness.invariants.result import Check
from harness.plan.workload import Workload, WorkloadQuery
from harness.traffic.clients import Request, Timeline
from harness.traffic.sampler import LockStats

__all__ = [
    "check_no_errors",
    "check_old_connections",
    "check_writes_kept",
    "latency_summary",
]


_PSYCOPG_STATEMENT = re.compile(r'"_pg3_\d+"')
_BIND_COUNTS = re.compile(
    r"bind message supplies \d+ parameters, but (prepared statement \S+) requires \d+"
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def by_phase(requests: list[Request], timeline: Timeline) -> dict[str, list[Request]]:
    phases: dict[str, list[Request]] = {}
    for r in requests:
        phases.setdefault(timeline.phase_of(r.start, r.end), []).append(r)
    return phases


def latency_summary(
    requests: list[Request], timeline: Timeline, locks: dict[str, LockStats]
) -> list[dict[str, object]]:
    """Per phase, in order: requests, failures, p50/p99/max, and the lock evidence."""
    phases = by_phase(requests, timeline)
    out: list[dict[str, object]] = []
    for label in dict.fromkeys(timeline.labels):
        rs = phases.get(label, [])
        seconds = [r.seconds for r in rs]
        entry: dict[str, object] = {
            "phase": label,
            "step": label in timeline.steps,
            "requests": len(rs),
            "failed": sum(not r.ok for r in rs),
            "p50_ms": round(_percentile(seconds, 0.5) * 1000, 1),
            "p99_ms": round(_percentile(seconds, 0.99) * 1000, 1),
            "max_ms": round(max(seconds, default=0.0) * 1000, 1),
        }
        if label in locks:
            entry.update(locks[label].to_json())
        out.append(entry)
    return out


def _via(path: str, labels: Mapping[str, str] | None) -> str:
    """How ``path`` (writer, reader, ...) reached a server; see harness.invariants.not_run."""
    return labels.get(path, path) if labels is not None else f"PgBouncer {path}"


def _grouped(message: str) -> str:
    """``message`` with what differs between clients of one failure masked: psycopg names
    its prepared statements ``_pg3_0``, ``_pg3_1`` … per connection, so a preparing driver
    behind a transaction pool that keeps no prepared statements (PgBouncer before 1.21)
    fails under a new name, and with another client's parameter count, every time."""
    message = _PSYCOPG_STATEMENT.sub('"_pg3_…"', message)
    return _BIND_COUNTS.sub(r"bind message supplies … parameters, but \1 requires …", message)


def check_no_errors(
    requests: list[Request],
    timeline: Timeline,
    *,
    labels: Mapping[str, str] | None = None,
    again: Mapping[int, Request] | None = None,
) -> Check:
    """``again``: requests the workload's ``request_timeout`` cancelled while no lock of the
    migration held them, by ``id``, and the same query run alone after the traffic
    (:mod:`harness.traffic.timeouts`); those it fits are this machine's load, not failures."""
    again = again or {}
    excused = [r for r in requests if id(r) in again and again[id(r)].ok]
    skipped = {id(r) for r in excused}
    groups: dict[tuple[str, str | None, str, str | None, str], list[Request]] = {}
    for r in requests:
        if not r.ok and id(r) not in skipped:
            key = (r.query, r.role, r.path, r.sqlstate, _grouped(r.message))
            groups.setdefault(key, []).append(r)
    offenders = []
    for (query, role, path, sqlstate, message), rs in sorted(
        groups.items(), key=lambda item: min(r.end for r in item[1])
    ):
        first = timeline.step_of(timeline.phase_at(min(r.end for r in rs)))
        alone = next((again[id(r)] for r in rs if id(r) in again), None)
        offenders.append(
            f"{query} as {role or 'the harness'} via {_via(path, labels)}: {len(rs)} failed, from "
            f"{first} on: {message} [SQLSTATE {sqlstate}]"
            + (
                f"; run again alone after the gate, no lock of the migration holding it, it "
                f"failed too after {_ms(alone.seconds)}: {alone.message}"
                if alone is not None
                else ""
            )
        )
    slow = ""
    if excused:
        ran = {r.query: again[id(r)] for r in excused}
        slow = (
            f"; {len(excused):,} cancelled by the workload's request_timeout while no lock of "
            "the migration held them, and each such query then ran alone within it ("
            + ", ".join(f"{q} in {_ms(a.seconds)}" for q, a in sorted(ran.items()))
            + "): this machine's load, not the plan"
        )
    return Check.of(
        "traffic.no_errors",
        offenders=offenders,
        ok=f"none of {len(requests):,} application requests failed, before, during and "
        f"after every step{slow}",
        failed=f"{sum(len(g) for g in groups.values()):,} of {len(requests):,} application "
        f"requests failed; each is named with the step from which it fails{slow}",
    )


def _latest_acknowledged(requests: list[Request]) -> list[Request]:
    """The last acknowledged write per (query, parameter row): the one that must be kept."""
    latest: dict[tuple[str, int], Request] = {}
    for r in sorted((r for r in requests if r.kind == "write" and r.ok), key=lambda r: r.end):
        latest[(r.query, r.key)] = r
    return list(latest.values())


def _sees(conn: psycopg.Connection[Any], q: WorkloadQuery, values: dict[str, Any]) -> bool:
    assert q.verify is not None
    return conn.execute(q.verify.encode(), values, prepare=False).fetchone() is not None


def check_writes_kept(
    requests: list[Request], workload: Workload, *, primary: str, replica: str | None
) -> Check:
    """Every acknowledged write is there, on the primary and on the replica; no
    unacknowledged write whose first statements returned keys was applied."""
    queries = {q.name: q for q in workload.queries}
    kept = _latest_acknowledged(requests)
    unacknowledged = [r for r in requests if r.kind == "write" and not r.ok and len(r.values) > 1]
    offenders: list[str] = []
    targets = [("primary", primary)] + ([("replica", replica)] if replica else [])
    for where, dsn in targets:
        with connect(dsn) as conn:
            missing = [r for r in kept if not _safe_sees(conn, queries[r.query], r.values)]
            for r in missing[:20]:
                offenders.append(
                    f"{r.query} by client {r.client} was acknowledged and is not on the {where} "
                    f"({_values(r.values)})"
                )
            if len(missing) > 20:
                offenders.append(f"… and {len(missing) - 20} more on the {where}")
            for r in unacknowledged:
                if _safe_sees(conn, queries[r.query], r.values):
                    offenders.append(
                        f"{r.query} by client {r.client} failed ({r.message}) and yet is on "
                        f"the {where}"
                    )
    return Check.of(
        "traffic.writes_kept",
        offenders=offenders,
        ok=f"all {len(kept):,} acknowledged writes (the latest per row, of "
        f"{sum(r.kind == 'write' and r.ok for r in requests):,}) are on the "
        + " and the ".join(w for w, _ in targets),
        failed="acknowledged writes are missing, or failed writes were applied",
    )


def _safe_sees(conn: psycopg.Connection[Any], q: WorkloadQuery, values: dict[str, Any]) -> bool:
    try:
        with conn.transaction():
            return _sees(conn, q, values)
    except psycopg.Error:
        return False


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!s:.40}" for k, v in sorted(values.items()))


Backend = tuple[int, datetime]  # (pid, backend_start): one server connection


def check_old_connections(
    requests: list[Request],
    timeline: Timeline,
    *,
    labels: Mapping[str, str] | None = None,
    idle_after_first_step: Collection[Backend] = (),
) -> Check:
    """Requests after the first step ran on server connections opened before it.

    A pooler hands out its most recently used idle server connection (PgBouncer's
    LIFO), so after a burst that opened new ones, the few requests of a rare path may
    all run on those while its old connections wait, still open: by chance. Such a path
    counts as exercised when one of its old connections was idle and open as the first
    step ended (``idle_after_first_step``), since the next request could have had it;
    a pooler that closes them (``server_lifetime = 0``) still fails the check.
    """
    first_steps = [timeline.started(label) for label in timeline.steps]
    started = min((t for t in first_steps if t is not None), default=None)
    early = [r for r in requests if r.backend_start is not None and r.ok]
    pre = [r for r in early if started is not None and r.start < started]
    before_at = max((r.backend_start for r in pre if r.backend_start is not None), default=None)
    idle = set(idle_after_first_step)
    offenders = []
    counts: dict[str, int] = {}
    kept: dict[str, int] = {}
    # Two paths can reach the same server the same way (no replica, no pooler): one count.
    for path in sorted({_via(r.path, labels) for r in requests}):
        after = [
            r
            for r in early
            if _via(r.path, labels) == path and started is not None and r.start >= started
        ]
        old = [
            r
            for r in after
            if before_at is not None
            and r.backend_start is not None
            and r.backend_start <= before_at
        ]
        counts[path] = len(old)
        waiting = {(r.pid, r.backend_start) for r in pre if _via(r.path, labels) == path} & idle
        if not old and waiting:
            kept[path] = len(waiting)
        elif not old:
            offenders.append(
                f"{path}: none of {len(after)} requests after the first step ran "
                "on a server connection opened before it"
            )
    shown = [
        f"{p}: none, but {kept[p]:,} opened before it were open and idle as it ended"
        if p in kept
        else f"{p}: {n:,}"
        for p, n in counts.items()
    ]
    return Check.of(
        "traffic.old_connections_used",
        offenders=offenders,
        ok="requests after the first step ran on server connections opened before it ("
        + ", ".join(shown)
        + "), so the stale-session hazard was exercised",
        failed="the old server connections were not exercised after the first step",
    )
