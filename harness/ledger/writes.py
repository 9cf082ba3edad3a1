"""Every acknowledged write checked, from the ledger: each row it changed is as the
application last left it, on the primary and on the replica; no failed write committed.

The ledger knows every row each of the application's transactions changed (its
decoded changes, keyed by the table's key) and what the last of those changes
left there (its copy, with the application's writes replayed). So a write is
kept when each row it touched reads the same as in the copy, wherever the
migration has moved the table; an insert a later write deleted is checked as
absent, as the application left it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import psycopg

from harness.connections import Conn, connect, describe
from harness.invariants.result import Check
from harness.ledger.ledger import ChangeLedger, TableKey

__all__ = ["check_writes_accounted"]

_WHERE_NOW = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = %s AND c.relkind IN ('r', 'p')
"""
_BY_NAME = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = %s AND c.relkind IN ('r', 'p') AND n.nspname <> 'pgcutover'
"""


def _located(conn: Conn, table: TableKey) -> tuple[str, str] | None:
    """Where ``table`` is now: the same relation, or the one table of its name."""
    row = conn.execute(_WHERE_NOW, (table.oid,)).fetchone()
    if row is not None and row[1] == table.name:
        return str(row[0]), str(row[1])
    rows = conn.execute(_BY_NAME, (table.name,)).fetchall()
    return (str(rows[0][0]), str(rows[0][1])) if len(rows) == 1 else None


def check_writes_accounted(
    ledger: ChangeLedger,
    acknowledged: Iterable[tuple[int | None, str]],
    failed: Iterable[tuple[int | None, str]],
    *,
    targets: list[tuple[str, str]],
) -> Check:
    """``acknowledged`` and ``failed``: (transaction id, the query's name) of each write."""
    assert ledger.copy is not None
    acked, failed = list(acknowledged), list(failed)
    kinds: Counter[str] = Counter()
    untouched = 0
    for xid, _ in acked:
        ops = {op for _, _, op in ledger.applied.by_xid.get(xid or -1, [])}
        if not ops:
            untouched += 1
        for op in ops:
            kinds[op] += 1
    touched: dict[int, list[tuple[Any, ...]]] = {}
    for oid, key in ledger.applied.rows:
        touched.setdefault(oid, []).append(key)
    expected: dict[int, dict[tuple[Any, ...], tuple[str | None, ...]]] = {}
    for oid, keys in touched.items():
        table = ledger.tables[oid]
        expected[oid] = ledger.row_text(ledger.copy, table, (table.schema, table.name), keys)
        ledger.copy.rollback()
    offenders: list[str] = []
    for where, dsn in targets:
        wrong: list[str] = []
        with connect(dsn) as conn:
            for oid, keys in sorted(touched.items()):
                table = ledger.tables[oid]
                at = _located(conn, table)
                if at is None:
                    wrong.append(f"`{table.qualified}` is not there to hold {len(keys):,} rows")
                    continue
                try:
                    found = ledger.row_text(conn, table, at, keys)
                except psycopg.Error as exc:  # an unlogged table on a standby, say
                    wrong.append(
                        f"`{'.'.join(at)}` cannot be read for the {len(keys):,} rows the "
                        f"application wrote: {describe(exc)}"
                    )
                    continue
                for key in keys:
                    want, got = expected[oid].get(key), found.get(key)
                    if want == got:
                        continue
                    shown = ", ".join(f"{k}={v}" for k, v in zip(table.key, key, strict=True))
                    if got is None:
                        wrong.append(f"{'.'.join(at)} row {shown}: written by the application, "
                                     "missing")  # fmt: skip
                    elif want is None:
                        wrong.append(f"{'.'.join(at)} row {shown}: deleted by the application, "
                                     "still there")  # fmt: skip
                    else:
                        wrong.append(f"{'.'.join(at)} row {shown}: not as the application's "
                                     "last write left it")  # fmt: skip
        offenders += [f"on the {where}: {w}" for w in wrong[:20]]
        if len(wrong) > 20:
            offenders.append(f"… and {len(wrong) - 20:,} more on the {where}")
    applied = [(xid, name) for xid, name in failed if xid is not None and xid in ledger.committed]
    for xid, name in applied[:20]:
        offenders.append(f"{name} (transaction {xid}) failed for the application, yet committed")
    failed_count = len(failed)
    rows = sum(len(k) for k in touched.values())
    by_kind = ", ".join(
        f"{n:,} {word}" for word, n in (("inserting", kinds["INSERT"]),
                                        ("updating", kinds["UPDATE"]),
                                        ("deleting", kinds["DELETE"])) if n
    ) or "none changing a row"  # fmt: skip
    return Check.of(
        "traffic.writes_kept",
        offenders=offenders,
        ok=f"all {len(acked):,} acknowledged writes verified ({by_kind}"
        + (f"; {untouched:,} changed no row" if untouched else "")
        + f"): the {rows:,} rows they changed are as the application last left them on the "
        + " and the ".join(w for w, _ in targets)
        + f"; none of {failed_count:,} failed writes committed",
        failed="acknowledged writes are missing or not as written, or failed writes committed",
    )
