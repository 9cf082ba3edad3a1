"""``reads.same_answers``: the application's reads answer after the migration as before it.

The other checks ask whether the application's queries still run; none asks
whether they still say the same thing. A view recreated in its new schema with
a filter it did not have, a function rewritten for its new ``search_path`` that
now divides by two, a join that lost a condition: every query runs, every row
is still in its table, and the shop's pages show other numbers. A rollback that
puts the old definition back hides it from ``rollback.exact`` as well.

So each read query of the workload runs twice with the same parameters: on the
change ledger's copy of the database (:mod:`harness.ledger`: the database as it
was, with the application's writes and the plan's declared data changes
replayed, so without traffic and with it it holds what the migrated database
must answer), on the search_path the role's sessions had before the migration;
and on the migrated primary, on the one its sessions get now. Both run as the
harness (row-level security is the other checks' subject), with ``$user`` read
as the role, in a read-only transaction rolled back. The answers must be equal:
as lists where the query orders its rows, as multisets where it does not.

What cannot be compared is said, not guessed at: a query that answers two runs
on the copy differently (``now()``, ``random()``); one with a ``LIMIT`` and no
``ORDER BY`` (any rows may come back: only their number is compared); one that
reads a materialized view (what it holds depends on when a step refreshed it).
A query that fails on either side is ``sessions.*``'s finding, not this one's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint
from harness.connections import Conn
from harness.invariants.acting import PROBE_BOUNDS
from harness.invariants.new_sessions import NullForMissing, parameter_rows
from harness.invariants.old_path import built_in_search_path, search_path_in
from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.default_workload import workload_of
from harness.plan.workload import WorkloadQuery

__all__ = ["NAME", "check_same_answers"]

NAME = "reads.same_answers"
ROWS_PER_QUERY = 2  # parameter rows each read query is compared with
_LIMIT = re.compile(r"\blimit\b", re.IGNORECASE)
_ORDER = re.compile(r"\border\s+by\b", re.IGNORECASE)

Rows = list[tuple[Any, ...]]


def _as_role(path: str, role: str | None) -> str:
    """``path`` with ``$user`` read as ``role``: the harness runs it, as the role would."""
    if role is None:
        return path
    name = sql.Identifier(role).as_string()
    return path.replace('"$user"', name).replace("$user", name)


def _answer(conn: Conn, text: str, values: dict[str, Any], path: str) -> Rows | None:
    """The rows ``text`` returns on ``path``; None when it fails or returns none."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(PROBE_BOUNDS)
            conn.execute("SELECT set_config('search_path', %s, true)", (path,))
            cur = conn.execute(text.encode(), NullForMissing(values), prepare=False)
            return cur.fetchall() if cur.description is not None else None
    except psycopg.Error:
        return None


def _parameters(conn: Conn, q: WorkloadQuery, path: str) -> list[dict[str, Any]]:
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT set_config('search_path', %s, true)", (path,))
            return parameter_rows(conn, q, limit=ROWS_PER_QUERY)
    except psycopg.Error:
        return []


def _same(text: str, before: Rows, after: Rows) -> bool:
    if _ORDER.search(text):
        return before == after
    if _LIMIT.search(text):
        return len(before) == len(after)
    return sorted(map(repr, before)) == sorted(map(repr, after))


def _difference(before: Rows, after: Rows) -> str:
    if len(before) != len(after):
        return f"{len(before):,} rows before the migration, {len(after):,} after"
    pairs = zip(before, after, strict=True)
    first = next(((b, a) for b, a in pairs if b != a), None)
    shown = (
        f": {_row(first[0])} before, {_row(first[1])} after"
        if first is not None
        else ": the same rows in another order"
    )
    counted = "the same row" if len(before) == 1 else f"the same {len(before):,} rows"
    return f"{counted} counted, other values{shown}"


def _row(row: tuple[Any, ...]) -> str:
    return "(" + ", ".join(f"{v!s:.40}" for v in row) + ")"


def _reads_view(text: str, views: Sequence[str]) -> str | None:
    return next((v for v in views if re.search(rf"\b{re.escape(v)}\b", text)), None)


def _compared(
    plan: Plan, before: Fingerprint, after: Fingerprint, *, copy: Conn, primary: Conn
) -> Iterator[tuple[str, str | None]]:
    """(what, finding) for each statement compared or left out; finding None when equal."""
    default = built_in_search_path(primary)
    matviews = sorted({v.name for f in (before, after) for v in f.views.values() if v.kind == "m"})
    for q in workload_of(plan).queries:
        if q.kind != "read":
            continue
        old = _as_role(search_path_in(before, q.role or "", default), q.role)
        new = _as_role(search_path_in(after, q.role or "", default), q.role)
        for text in q.sql:
            view = _reads_view(text, matviews)
            if view is not None:
                yield f"{q.name}: not compared, it reads the materialized view {view}", None
                continue
            for values in _parameters(copy, q, old):
                was = _answer(copy, text, values, old)
                if was is None:
                    yield f"{q.name}: not compared, it fails on the database as it was", None
                    break
                if _answer(copy, text, values, old) != was:
                    yield f"{q.name}: not compared, it answers two runs differently", None
                    break
                now = _answer(primary, text, values, new)
                if now is None:
                    continue
                finding = None
                if not _same(text, was, now):
                    shown = ", ".join(f"{k}={v!s:.40}" for k, v in sorted(values.items()))
                    finding = (
                        f"{q.name} (as {q.role or 'the harness'}"
                        + (f", {shown}" if shown else "")
                        + f"): {_difference(was, now)} — `{' '.join(text.split())[:120]}`"
                    )
                yield q.name, finding
    copy.rollback()


def check_same_answers(
    plan: Plan, before: Fingerprint, after: Fingerprint, *, copy: Conn | None, primary: Conn
) -> Check:
    """Each read of the workload, on the copy of the database as it was and on the
    migrated one; see the module. ``copy``: the ledger's, None where it has none."""
    if copy is None:
        return Check.not_run(
            NAME,
            why="the server keeps no change ledger (no logical decoding), so there is no copy "
            "of the database as it was to ask the same reads",
            run_with="wal_level = logical on the primary (the local and docker providers set it)",
        )
    results = list(_compared(plan, before, after, copy=copy, primary=primary))
    offenders = [f for _, f in results if f is not None]
    compared = sum(1 for what, _ in results if "not compared" not in what)
    left = sorted({what for what, _ in results if "not compared" in what})
    note = f"; {'; '.join(left)}" if left else ""
    return Check.of(
        NAME,
        offenders=offenders,
        ok=f"{compared} reads of the workload answer on the migrated database as on a copy of "
        f"it as it was (the application's writes replayed){note}",
        failed="the application's reads answer differently after the migration than on the "
        f"database as it was{note}",
    )
