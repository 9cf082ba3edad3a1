"""Every row change between the baseline and each comparison, and who made it.

The gate compares the database with itself before the migration while the
application keeps writing to it. Rather than leave the tables it writes out of
the comparison, the ledger accounts for every row: a logical replication slot
(``test_decoding``, a temporary slot, so it goes with the ledger's session) is
created before the baseline, and a file copy of the database is taken at that
instant. Each committed transaction is then one of two kinds:

- the application's (its traffic records each write's transaction id): it is
  replayed onto the copy, in commit order, as logical replication applies it
  (``session_replication_role = replica``: no triggers, whose own writes are
  decoded and replayed themselves). The copy is then what the database must
  hold if the migration changed no row: every table is compared in full with it.
- anyone else's (a migration step): each row change to a table that existed
  before the migration is a finding naming the step, table, rows and columns.

A table rewrite (``ALTER TABLE … TYPE``) is not decoded, and needs not be: the
comparison with the copy sees what it changed. Tables the ledger cannot replay
onto (an UPDATE or DELETE on a table without a primary key or replica identity)
are named, and only those are left out of the comparison.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint
from harness.catalog.checksum import SESSION, table_checksum
from harness.connections import Conn, Lsn, connect, describe, insert_lsn
from harness.databases import create_database, drop_database, unique_name
from harness.dsn import database_of, with_database
from harness.errors import UsageError
from harness.ledger.decoding import UNCHANGED_TOAST, Change, DecodingError, parse_change
from harness.plan.data_changes import DataChange
from harness.progress import Progress, quiet

__all__ = ["ChangeLedger", "LedgerUnavailable", "StepChange", "TableKey"]

COPY_PREFIX = "pgcutover_baseline"
SAMPLE_ROWS = 20  # rows per step and table whose changed columns are named
BATCH = 2000  # changes replayed onto the copy per round of the pipeline

_TABLES = """
SELECT c.oid::bigint, n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgcutover')
   AND n.nspname NOT LIKE 'pg\\_%'
"""
# The key the decoding prints for UPDATE and DELETE: the replica identity index
# (the primary key by default), or every column under REPLICA IDENTITY FULL.
_KEYS = """
SELECT c.oid::bigint,
       CASE WHEN c.relreplident = 'f' THEN array(
              SELECT attname::text FROM pg_attribute
               WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum)
            ELSE array(
              SELECT a.attname::text FROM pg_index i
                JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
               WHERE i.indrelid = c.oid
                 AND ((c.relreplident = 'd' AND i.indisprimary)
                      OR (c.relreplident = 'i' AND i.indisreplident))
               ORDER BY k.ord) END,
       array(SELECT attname::text FROM pg_attribute
              WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
              ORDER BY attnum)
  FROM pg_class c WHERE c.oid = ANY(%s)
"""


# A change's line starts with its table's name, as test_decoding quotes it, and ": ".
_HEADS = """
SELECT 'table ' || quote_ident(s) || '.' || quote_ident(t)
  FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(s, t)
"""
# Split at the first ": ", a line of a wanted table is one of ``heads``: a hashed
# lookup, where testing each line against each name took 3 s for a step's 340,000
# rows of materialized views. A quoted name may itself hold ": " (then the split ends
# inside its quotes, so no other table's line can match a head): those are ``odd``,
# tested the slow way.
_CHANGES = """
SELECT c.lsn::text, c.xid::text, c.data
  FROM pg_logical_slot_get_changes(%(slot)s, %(upto)s::pg_lsn, NULL,
                                   'include-xids', '1', 'skip-empty-xacts', '1') c
 WHERE c.data LIKE 'BEGIN %%' OR c.data LIKE 'COMMIT %%'
    OR split_part(c.data, ': ', 1) = ANY(%(heads)s::text[])
    OR EXISTS (SELECT 1 FROM unnest(%(odd)s::text[]) AS h WHERE starts_with(c.data, h || ': '))
"""


class LedgerUnavailable(Exception):
    """Why the server cannot keep a ledger; the gate then says what it could not account for."""


@dataclass(frozen=True)
class TableKey:
    """A table of the copy: where it is there, its key and the columns it can be given."""

    oid: int
    schema: str
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class StepChange:
    """Rows a phase other than the application's traffic changed in one table."""

    phase: str
    table: str  # the table's name before the migration
    op: str
    rows: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)  # key -> text of changed rows
    columns: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        verb = {"INSERT": "inserted", "UPDATE": "updated", "DELETE": "deleted"}.get(
            self.op, "truncated"
        )
        what = f"{self.rows:,} row{'s' if self.rows != 1 else ''} {verb}" if self.op != "TRUNCATE" \
            else "the table truncated"  # fmt: skip
        cols = f" (columns changed: {', '.join(sorted(self.columns))})" if self.columns else ""
        return f"{self.phase}: `{self.table}`: {what}{cols}, not by the application"


@dataclass
class _Mark:
    lsn: Lsn
    label: str
    step: bool
    names: dict[tuple[str, str], int]  # (schema, table) -> oid, on the primary then
    #: how far the slowest standby was behind when the mark was taken: bytes, and
    #: the server's own replay_lag (the time its latest replayed commit took), ms
    behind: tuple[int, float | None] | None = None


# The standbys streaming from the primary; none on a server without a replica.
_BEHIND = """
SELECT max(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn))::bigint,
       max(extract(epoch FROM replay_lag) * 1000)::float8
  FROM pg_stat_replication
"""


@dataclass
class Applied:
    """What the application's committed writes did, table by table, key by key."""

    #: (table oid, key tuple) -> the last change's op
    rows: dict[tuple[int, tuple[Any, ...]], str] = field(default_factory=dict)
    by_xid: dict[int, list[tuple[int, tuple[Any, ...], str]]] = field(default_factory=dict)


class ChangeLedger:
    """The ledger of one gate run on one database; :meth:`close` drops all it made."""

    def __init__(
        self,
        dsn: str,
        *,
        declared: tuple[DataChange, ...] = (),
        progress: Progress = quiet,
    ) -> None:
        self.dsn = dsn
        self.declared = declared
        self.progress = progress
        self.conn: Conn | None = None
        self.copy_name: str | None = None
        self.copy: Conn | None = None
        self.slot = unique_name("pgcutover_ledger")[:63]
        self.start_lsn = Lsn(0)
        self.marks: list[_Mark] = []
        self.tables: dict[int, TableKey] = {}
        self.unaccounted: dict[str, str] = {}  # table (before) -> why
        self.step_changes: dict[tuple[str, str, str], StepChange] = {}
        self.applied = Applied()
        self.committed: set[int] = set()  # xids of every transaction that committed changes
        self.declared_rows: Counter[tuple[str, str]] = Counter()  # (phase, table) -> rows
        self._dirty: set[int] = set()
        self._batch: list[tuple[TableKey, sql.Composed, tuple[Any, ...]]] = []
        self._checksums: dict[int, tuple[int, str]] = {}
        self.decoded = 0
        self.seconds = 0.0

    # -- life cycle --------------------------------------------------------------------
    def open(self) -> None:
        """The copy, before anything writes to the database; :meth:`start` makes the slot.

        The copy first because ``CREATE DATABASE … TEMPLATE`` wants no session in the
        template, and a logical slot is made from a session in its database.
        """
        try:
            with connect(self.dsn) as probe:
                row = probe.execute("SHOW wal_level").fetchone()
            if row is None or row[0] != "logical":
                raise LedgerUnavailable(
                    f"wal_level is {row[0] if row else 'unknown'} on this server, and row "
                    "changes can only be told apart with logical decoding; set "
                    "wal_level = logical (a restart) to have every row accounted for"
                )
            self.copy_name = unique_name(COPY_PREFIX)
            create_database(self.dsn, self.copy_name, template=database_of(self.dsn))
            conn = connect(self.dsn, application_name="pgcutover-ledger")
            self.conn = conn
            _pin_session(conn)
            copy = connect(with_database(self.dsn, self.copy_name), autocommit=False)
            self.copy = copy
            _pin_session(copy)
            copy.execute("SET session_replication_role = replica")
            copy.commit()
            self.tables = self._read_tables()
        except (psycopg.Error, UsageError) as exc:
            self.close()
            raise _refused(exc) from None
        except LedgerUnavailable:
            self.close()
            raise

    def start(self) -> None:
        """The slot: every change committed from now on is decoded.

        Apart from :meth:`open` so that what the gate does before its first step — the
        backup's proof restores a whole database on this server — is not in the WAL
        the slot reads: decoding skips another database's changes but still reads
        them (780 MB of WAL at scale 100, about 15 s of the gate). Nothing commits in
        this database in between (the traffic starts after), so the copy is still
        where the slot starts from.
        """
        assert self.conn is not None
        try:
            # A new slot waits for every transaction running on the server to end: on
            # a busy server someone else runs, that wait is bounded, and said.
            self.conn.execute("SET statement_timeout = '30s'")
            self.conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'test_decoding', true)",
                (self.slot,),
            )
            self.conn.execute("RESET statement_timeout")
            self.start_lsn = insert_lsn(self.conn)
            self.mark("baseline", step=False)
        except psycopg.Error as exc:
            self.close()
            raise _refused(exc) from None

    def close(self) -> None:
        if self.copy is not None:
            self.copy.close()
            self.copy = None
        if self.conn is not None:
            self.conn.close()  # a temporary slot goes with its session
            self.conn = None
        if self.copy_name is not None:
            try:
                drop_database(self.dsn, self.copy_name)
            except psycopg.Error as exc:
                self.progress(f"could not drop the ledger's copy {self.copy_name}: {describe(exc)}")
            self.copy_name = None

    # -- marks -----------------------------------------------------------------------------
    def mark(self, label: str, *, step: bool) -> None:
        """What runs from now on is ``label``: changes committed after belong to it."""
        assert self.conn is not None
        names = {(str(s), str(n)): int(oid) for oid, s, n in self.conn.execute(_TABLES).fetchall()}
        lag = self.conn.execute(_BEHIND).fetchone()
        behind = None if lag is None or lag[0] is None else (int(lag[0]), lag[1])
        self.marks.append(_Mark(insert_lsn(self.conn), label, step, names, behind))

    def settle(self) -> Lsn:
        """A WAL position every commit acknowledged so far lies before, flushed for decoding.

        Decoding reads only flushed WAL; a commit made with ``synchronous_commit = off``
        may still be in WAL buffers. ``pg_current_xact_id()`` assigns an id, so the
        commit that follows writes a record and, with ``synchronous_commit = on``,
        flushes everything before it.
        """
        assert self.conn is not None
        lsn = insert_lsn(self.conn)
        with self.conn.transaction():
            self.conn.execute("SET LOCAL synchronous_commit = on")
            self.conn.execute("SELECT pg_current_xact_id()")
        return lsn

    def summary(self) -> dict[str, object]:
        """Per step: the WAL it wrote, and how far behind the replica was as it ended."""
        steps = []
        for mark, after in zip(self.marks, self.marks[1:], strict=False):
            if not mark.step:
                continue
            entry: dict[str, object] = {"step": mark.label, "wal_bytes": int(after.lsn - mark.lsn)}
            if after.behind is not None:
                entry["replica_behind_bytes"] = after.behind[0]
                if after.behind[1] is not None:
                    entry["replay_lag_ms"] = round(after.behind[1], 1)
            steps.append(entry)
        return {
            "decoded_changes": self.decoded,
            "application_rows": len(self.applied.rows),
            "seconds": round(self.seconds, 2),
            "unaccounted": dict(sorted(self.unaccounted.items())),
            "steps": steps,
        }

    # -- reading the slot ----------------------------------------------------------------
    def catch_up(self, upto: Lsn, *, traffic: Callable[[], Collection[int]]) -> None:
        """Decode every transaction committed before ``upto``; replay the application's."""
        assert self.conn is not None
        started = time.perf_counter()
        xids = set(traffic())
        # Only the copy's tables, under any name they had: a step that fills a new table
        # (a materialized view, a copy) decodes to rows nobody compares, and leaving them
        # in the server saves reading them here. Names as test_decoding quotes them.
        names = sorted(
            {name for m in self.marks for name, oid in m.names.items() if oid in self.tables}
        )
        quoted = self.conn.execute(
            _HEADS, {"schemas": [n[0] for n in names], "tables": [n[1] for n in names]}
        ).fetchall()
        heads = [str(h) for (h,) in quoted]
        pending: list[Change] = []
        xid = 0
        # A server-side cursor: a step that rewrites a big table decodes to millions of lines.
        with self.conn.transaction(), self.conn.cursor(name="pgcutover_ledger") as cur:
            cur.itersize = 5000
            cur.execute(
                _CHANGES,
                {
                    "slot": self.slot,
                    "upto": str(upto),
                    "heads": [h for h in heads if ": " not in h],
                    "odd": [h for h in heads if ": " in h],
                },
            )
            for lsn_text, xid_text, data in cur:
                if data.startswith("BEGIN"):
                    pending, xid = [], int(xid_text)
                elif data.startswith("COMMIT"):
                    self._commit(xid, Lsn.parse(lsn_text), pending, application=xid in xids)
                    pending = []
                else:
                    try:
                        pending.append(parse_change(data))
                    except DecodingError as exc:
                        self.unaccounted.setdefault(
                            data.split(":", 1)[0].removeprefix("table "),
                            f"a change the ledger could not read ({exc})",
                        )
        self._flush()
        if self.copy is not None:
            self.copy.commit()
        self.seconds += time.perf_counter() - started

    def _phase_at(self, commit_end: Lsn) -> _Mark:
        """The phase a transaction committed in. Decoding gives the end of the commit
        record, which is where a mark taken just after it stands: so strictly before."""
        found = self.marks[0]
        for mark in self.marks:
            if mark.lsn < commit_end:
                found = mark
        return found

    def _resolve(self, change: Change, lsn: Lsn) -> TableKey | None:
        """The copy's table a change names, as it was named when it was made."""
        name = (change.schema, change.table)
        before = [m for m in self.marks if m.lsn <= lsn]
        after = [m for m in self.marks if m.lsn > lsn]
        for mark in [*reversed(before), *after]:
            if name in mark.names:
                return self.tables.get(mark.names[name])
        return None

    def _commit(self, xid: int, lsn: Lsn, changes: list[Change], *, application: bool) -> None:
        if lsn < self.start_lsn or not changes:
            return
        self.committed.add(xid)
        phase = self._phase_at(lsn)
        for change in changes:
            self.decoded += 1
            table = self._resolve(change, lsn)
            if table is None:
                continue
            if application:
                self._replay(xid, table, change)
            elif self._is_declared(phase, table, change):
                self._replay(None, table, change)
                self.declared_rows[(phase.label, table.qualified)] += 1
            else:
                self._record(phase, table, change)

    def _is_declared(self, phase: _Mark, table: TableKey, change: Change) -> bool:
        """A change the plan says its step makes (the second migration's too)."""
        step = phase.label.removesuffix(" (again)")
        return phase.step and any(
            d.covers(step=step, table=table.qualified, op=change.op) for d in self.declared
        )

    # -- the application's changes, replayed -------------------------------------------------
    def _key_of(self, table: TableKey, values: dict[str, Any] | None) -> tuple[Any, ...] | None:
        if not table.key or values is None or any(k not in values for k in table.key):
            return None
        return tuple(values[k] for k in table.key)

    def _replay(self, xid: int | None, table: TableKey, change: Change) -> None:
        """Apply ``change`` to the copy; ``xid`` None: a step's declared change."""
        if table.qualified in self.unaccounted:
            return
        target = sql.Identifier(table.schema, table.name)
        if change.op == "TRUNCATE":
            self._apply(table, sql.SQL("TRUNCATE {}").format(target), ())
            return
        old = self._key_of(table, change.old_key if change.old_key is not None else change.new)
        if change.op != "INSERT" and old is None:
            self.unaccounted[table.qualified] = (
                f"the application {'updated' if change.op == 'UPDATE' else 'deleted'} rows of "
                "a table without a primary key or replica identity, so which rows cannot be "
                "told; give it a primary key, or REPLICA IDENTITY FULL"
            )
            return
        given = {
            c: v for c, v in change.new.items() if c in table.columns and v is not UNCHANGED_TOAST
        }
        where = sql.SQL(" AND ").join(
            sql.SQL("{} = %s").format(sql.Identifier(k)) for k in table.key
        )
        if change.op == "INSERT":
            statement = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})").format(
                target,
                sql.SQL(", ").join(map(sql.Identifier, given)),
                sql.SQL(", ").join(sql.Placeholder() * len(given)),
            )
            self._apply(table, statement, tuple(given.values()))
        elif change.op == "UPDATE":
            sets = {c: v for c, v in given.items() if c not in table.key or change.old_key}
            if sets:
                statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
                    target,
                    sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in sets),
                    where,
                )
                self._apply(table, statement, (*sets.values(), *(old or ())))
        else:
            self._apply(table, sql.SQL("DELETE FROM {} WHERE {}").format(target, where), old or ())
        if xid is None:
            return
        new = self._key_of(table, change.new) if change.op != "DELETE" else old
        if old is not None and new != old:
            self.applied.rows[(table.oid, old)] = "DELETE"
        if new is not None:
            self.applied.rows[(table.oid, new)] = change.op
            self.applied.by_xid.setdefault(xid, []).append((table.oid, new, change.op))

    def _apply(self, table: TableKey, statement: sql.Composed, params: tuple[Any, ...]) -> None:
        """One change for the copy, sent with the next batch (:meth:`_flush`)."""
        self._dirty.add(table.oid)
        if self.copy is None:
            return
        self._batch.append((table, statement, params))
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """The batch in one pipeline under one savepoint; when any change fails, each
        again under its own, so that one the copy cannot take leaves the others.

        A savepoint per change costs three round trips each, and a busy gate replays
        thousands of the application's writes while its traffic shares the process.
        """
        batch, self._batch = self._batch, []
        if self.copy is None or not batch:
            return
        copy = self.copy
        try:
            with copy.transaction(), copy.pipeline():
                for _table, statement, params in batch:
                    copy.execute(statement, params, prepare=False)
            return
        except psycopg.Error:
            pass
        for table, statement, params in batch:
            if table.qualified in self.unaccounted:
                continue
            try:
                with copy.transaction():
                    copy.execute(statement, params, prepare=False)
            except psycopg.Error as exc:
                # A change the copy cannot take (the migration changed the column's type so
                # its new text does not fit the old one): the table is named, not guessed.
                self.unaccounted[table.qualified] = (
                    "a change to it could not be applied to the copy the comparison is made "
                    f"with ({describe(exc)})"
                )

    # -- everyone else's changes, recorded --------------------------------------------------
    def _record(self, phase: _Mark, table: TableKey, change: Change) -> None:
        label = phase.label
        entry = self.step_changes.setdefault(
            (label, table.qualified, change.op), StepChange(label, table.qualified, change.op)
        )
        entry.rows += 1
        if change.op == "UPDATE" and len(entry.samples) < SAMPLE_ROWS:
            key = self._key_of(table, change.old_key or change.new)
            if key is not None:
                entry.samples.append({"key": key, "new": change.new})

    def changes_in(self, phases: Iterable[str]) -> list[StepChange]:
        """The rows changed by anyone but the application in ``phases``, columns named."""
        wanted = set(phases)
        found = [c for c in self.step_changes.values() if c.phase in wanted]
        for change in found:
            if change.samples and not change.columns:
                change.columns = self._changed_columns(change)
        return sorted(found, key=lambda c: (c.phase, c.table, c.op))

    def _changed_columns(self, change: StepChange) -> set[str]:
        """Columns whose text differs between the copy's row and the step's new row."""
        table = next((t for t in self.tables.values() if t.qualified == change.table), None)
        if self.copy is None or table is None:
            return set()
        columns: set[str] = set()
        for sample in change.samples:
            wanted = [c for c in sample["new"] if c in table.columns]
            query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in wanted),
                sql.Identifier(table.schema, table.name),
                sql.SQL(" AND ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(k)) for k in table.key
                ),
            )
            row = self.copy.execute(query, sample["key"], prepare=False).fetchone()
            self.copy.rollback()
            if row is None:
                continue
            for name, was in zip(wanted, row, strict=True):
                now = sample["new"][name]
                if now is not UNCHANGED_TOAST and now != was:
                    columns.add(name)
        return columns

    # -- what the database must hold ------------------------------------------------------
    def expected(self, baseline: Fingerprint) -> Fingerprint:
        """``baseline`` with each table's data as the application's writes left it."""
        if self.copy is None:
            return baseline
        for oid in sorted(self._dirty):
            table = self.tables[oid]
            found = table_checksum(self.copy, schema=table.schema, table=table.name)
            self.copy.rollback()
            self._checksums[oid] = (found.rows, found.digest)
        self._dirty.clear()
        by_name = {t.qualified: oid for oid, t in self.tables.items()}
        tables = {}
        for key, rel in baseline.tables.items():
            found_oid = by_name.get(rel.qualified)
            if found_oid is not None and found_oid in self._checksums:
                rows, digest = self._checksums[found_oid]
                rel = dataclasses.replace(rel, rows=rows, checksum=digest)
            tables[key] = rel
        return dataclasses.replace(baseline, tables=tables)

    def changed_tables(self) -> set[str]:
        """Tables (by their name before the migration) the application changed."""
        return {self.tables[oid].qualified for oid, _ in self.applied.rows} | {
            self.tables[oid].qualified for oid in self._checksums
        }

    def _read_tables(self) -> dict[int, TableKey]:
        assert self.conn is not None
        listed = {int(o): (str(s), str(n)) for o, s, n in self.conn.execute(_TABLES).fetchall()}
        out: dict[int, TableKey] = {}
        if not listed:
            return out
        for oid, key, columns in self.conn.execute(_KEYS, (list(listed),)).fetchall():
            schema, name = listed[int(oid)]
            out[int(oid)] = TableKey(int(oid), schema, name, tuple(key), tuple(columns))
        return out

    def row_text(
        self, conn: Conn, table: TableKey, where: tuple[str, str], keys: list[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], tuple[str | None, ...]]:
        """The text of each row of ``keys`` in ``conn``'s copy of ``table`` (at ``where``)."""
        if not keys or not table.key:
            return {}
        cols = list(table.columns)
        query = sql.SQL("SELECT {}, {} FROM {} WHERE ({}) IN (SELECT * FROM unnest({}))").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in table.key),
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
            sql.Identifier(*where),
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in table.key),
            sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in table.key),
        )
        columns = list(zip(*keys, strict=True))
        found: dict[tuple[Any, ...], tuple[str | None, ...]] = {}
        with conn.transaction(force_rollback=True):
            _pin_session(conn, local=True)
            for row in conn.execute(query, [list(c) for c in columns], prepare=False):
                found[tuple(row[: len(table.key)])] = tuple(row[len(table.key) :])
        return found


def _refused(exc: psycopg.Error | UsageError) -> LedgerUnavailable:
    return LedgerUnavailable(
        f"the server refused what a ledger needs ({describe(exc)}); the harness "
        "needs REPLICATION (a logical slot), CREATEDB (a copy of the database) and "
        "superuser (session_replication_role) on a server it does not run"
    )


def _pin_session(conn: Conn, *, local: bool = False) -> None:
    """The checksums' text settings, so decoded values read back as they were written."""
    if local:
        conn.execute(SESSION)  # set_config(..., true): this transaction only
        return
    for setting, value in (
        ("TimeZone", "UTC"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
        ("lc_monetary", "C"),
    ):
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
