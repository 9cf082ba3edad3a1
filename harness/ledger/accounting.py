"""The data comparisons, made exact under the application's traffic.

Each comparison (data unchanged, rollback exact, on the replica, migrate again)
holds the expected fingerprint against the one read. Under traffic the expected
one is not the baseline but the baseline with the application's writes applied:
:meth:`Accounting.align` gives it from the ledger's copy. A sequence the
application drew from moves on: it is compared with what was drawn (never below
a value a committed row holds, never backwards between two readings) instead of
with its old value. What the ledger cannot account for is named in the check,
and only that is left out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable
from typing import Any

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint
from harness.connections import connect
from harness.invariants.result import Check
from harness.ledger.ledger import ChangeLedger

__all__ = ["WINDOWS", "Accounting", "drawn_sequences", "mask_data"]

#: which phases each comparison answers for: the first migration's steps, the
#: rollback's, and the second migration's
WINDOWS = {
    "migrate": lambda label: label.startswith("up/") and not label.endswith("(again)"),
    "rollback": lambda label: label.startswith("down/"),
    "again": lambda label: label.startswith("up/") and label.endswith("(again)"),
}


def mask_data(fp: Fingerprint, tables: Iterable[str], views: Iterable[str] = ()) -> Fingerprint:
    """``fp`` with the data of ``tables`` and of materialized views over ``views`` unread.

    Both by bare name, in any schema: a table keeps its name when it moves.
    """
    names = set(tables)
    over = set(views) | names
    masked = {
        key: dataclasses.replace(rel, rows=None, checksum=None) if rel.name in names else rel
        for key, rel in fp.tables.items()
    }
    views_out = dict(fp.views)
    if over:
        # A materialized view over a written table holds whatever was there when it was
        # last refreshed: its contents depend on when the traffic wrote, not on the plan.
        mentions = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(over)) + r")\b")
        views_out = {
            key: dataclasses.replace(rel, rows=None, checksum=None)
            if rel.kind == "m" and rel.definition and mentions.search(rel.definition)
            else rel
            for key, rel in fp.views.items()
        }
    return dataclasses.replace(fp, tables=masked, views=views_out)


class Accounting:
    """How the gate's comparisons account for rows: exact by default, from a ledger under
    traffic, or (a server without logical decoding) leaving out named tables."""

    def __init__(
        self,
        ledger: ChangeLedger | None = None,
        *,
        unaccounted: Collection[str] = (),
        why: str = "",
        drawn: Collection[str] = (),
    ) -> None:
        self.ledger = ledger
        self._unaccounted = set(unaccounted)
        self.why = why
        #: tables (bare names) the application wrote or may have drawn a sequence for
        self.drawn = set(drawn)
        self._readings: dict[str, int] = {}  # bare sequence name -> highest value read
        #: materialized views over tables the application changed: what they hold
        #: depends on when a step refreshed them, so their contents are not compared
        self.views_left: set[str] = set()

    def leave_out(self, tables: Iterable[str]) -> None:
        """Without a ledger: ``tables`` (bare names) the application wrote go uncompared."""
        self._unaccounted |= set(tables)

    @property
    def unaccounted(self) -> dict[str, str]:
        """Tables (bare names) left out of the data comparisons, and why."""
        out = {t: self.why for t in self._unaccounted}
        if self.ledger is not None:
            out.update({t.rsplit(".", 1)[-1]: w for t, w in self.ledger.unaccounted.items()})
        return out

    def align(self, expected: Fingerprint, actual: Fingerprint) -> tuple[Fingerprint, Fingerprint]:
        """The fingerprint the database must have, and the one read, made comparable."""
        written: set[str] = set()
        if self.ledger is not None:
            expected = self.ledger.expected(expected)
            written = {t.rsplit(".", 1)[-1] for t in self.ledger.changed_tables()}
        hidden = set(self.unaccounted)
        expected = mask_data(expected, hidden, written)
        actual = mask_data(actual, hidden, written)
        self.views_left |= {
            v.qualified
            for v in actual.views.values()
            if v.kind == "m" and v.populated and v.checksum is None
        }
        return _align_sequences(expected, actual, drawn_sequences(actual, self.drawn)), actual

    def judge(
        self, check: Check, *, window: str | None = None, extra: Collection[str] = ()
    ) -> Check:
        """``check`` with the rows each step changed, and what was left out, said."""
        offenders = list(check.details) if check.verdict == "fail" else []
        if self.ledger is not None and window is not None:
            steps = [str(c) for c in self.ledger.changes_in(self._phases(WINDOWS[window]))]
            offenders = steps + offenders
        offenders += list(extra)
        note = self.note()
        if not offenders:
            return dataclasses.replace(check, reason=check.reason + note)
        failed = check.reason if check.verdict == "fail" else "rows were changed by a step"
        return Check(check.name, "fail", failed + note, tuple(offenders), check.listing)

    def _phases(self, wanted: Any) -> list[str]:
        assert self.ledger is not None
        return [m.label for m in self.ledger.marks if wanted(m.label)]

    def note(self) -> str:
        parts = []
        if self.ledger is not None and self.ledger.copy is not None:
            rows = len(self.ledger.applied.rows)
            if rows:
                parts.append(
                    f"{rows:,} row{'s' if rows != 1 else ''} the application changed, "
                    "accounted for one by one"
                )
            declared = ", ".join(
                f"{step}: {n:,} in `{table}`"
                for (step, table), n in sorted(self.ledger.declared_rows.items())
            )
            if declared:
                parts.append(f"row changes the plan declares, expected: {declared}")
        by_reason: dict[str, list[str]] = {}
        for table, why in sorted(self.unaccounted.items()):
            by_reason.setdefault(why, []).append(f"`{table}`")
        for why, tables in by_reason.items():
            parts.append(f"not compared: {', '.join(tables)}, since {why}")
        if self.views_left:
            parts.append(
                "the contents of materialized views over tables the application changed "
                "depend on when they were refreshed, so not compared: "
                + ", ".join(f"`{v}`" for v in sorted(self.views_left))
            )
        return f" ({'; '.join(parts)})" if parts else ""

    def sequences(self, actual: Fingerprint, dsn: str) -> list[str]:
        """A sequence the application draws from never goes back, nor below a committed row."""
        offenders: list[str] = []
        columns: list[tuple[str, str, str, str, int]] = []
        drawn = drawn_sequences(actual, self.drawn)
        for seq in actual.sequences.values():
            if seq.name not in drawn:
                continue
            value = seq.last_value if seq.is_called else seq.last_value - seq.increment
            before = self._readings.get(seq.name)
            if before is not None and value < before:
                offenders.append(
                    f"`{seq.qualified}`: went back from {before:,} to {value:,} while the "
                    "application drew from it: new rows would reuse ids"
                )
            self._readings[seq.name] = max(value, before or value)
            if seq.owned_by and seq.increment > 0:
                schema, table, column = _split3(seq.owned_by)
                if schema:
                    columns.append((seq.qualified, schema, table, column, value))
        if columns:
            with connect(dsn) as conn:
                for qualified, schema, table, column, value in columns:
                    top = _max(conn, schema, table, column)
                    if top is not None and top > value:
                        offenders.append(
                            f"`{qualified}`: at {value:,}, below {top:,} in "
                            f"{schema}.{table}.{column}: the next rows would collide"
                        )
        return offenders


_NEXTVAL = re.compile(r"nextval\('((?:[^']|'')+)'")


def drawn_sequences(fp: Fingerprint, tables: Collection[str]) -> set[str]:
    """Bare names of the sequences that inserts into ``tables`` (bare names) draw from:
    those a column of theirs owns, and those their column defaults call nextval on."""
    found = {
        s.name for s in fp.sequences.values() if s.owned_by and _split3(s.owned_by)[1] in tables
    }
    for table in fp.tables.values():
        if table.name in tables:
            for column in table.columns:
                for name in _NEXTVAL.findall(column.default or ""):
                    found.add(name.replace("''", "'").rsplit(".", 1)[-1].strip('"'))
    return found


def _split3(owned_by: str) -> tuple[str, str, str]:
    parts = owned_by.split(".")
    if len(parts) != 3:
        return "", "", ""
    return parts[0], parts[1], parts[2]


def _max(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> int | None:
    query = sql.SQL("SELECT max({})::bigint FROM {}").format(
        sql.Identifier(column), sql.Identifier(schema, table)
    )
    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except psycopg.Error:
        return None  # not a number, or not there: the structural checks say so
    return int(row[0]) if row and row[0] is not None else None


def _align_sequences(expected: Fingerprint, actual: Fingerprint, drawn: set[str]) -> Fingerprint:
    """Sequences the application drew from take the value read (judged by :meth:`sequences`)."""
    if not drawn:
        return expected
    read = {s.name: s for s in actual.sequences.values()}
    sequences = {
        key: dataclasses.replace(s, last_value=read[s.name].last_value,
                                 is_called=read[s.name].is_called)
        if s.name in drawn and s.name in read else s
        for key, s in expected.sequences.items()
    }  # fmt: skip
    return dataclasses.replace(expected, sequences=sequences)
