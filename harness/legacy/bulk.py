"""Loading the built-in legacy database at the speed of the machine.

The plain load (:func:`harness.legacy.loader.seed` with ``bulk=False``) runs the
schema, the rows and the keys in one transaction over one connection: every
index is built after the last row is in, on one core. Here the same rows go in
the way ``pg_restore -j`` puts a dump in:

* the tables are created first and their primary keys dropped, so the rows are
  copied into bare heaps (inserting 3.6 million random cuids into a B-tree one
  by one costs more than sorting them once);
* each table's rows go in with ``COPY … (FREEZE)`` right after a ``TRUNCATE`` in
  the same transaction: the rows are written frozen and all-visible, so no later
  VACUUM has to rewrite every page (the quiet start the gate needs);
* as soon as a table's rows are in, its keys, indexes and foreign keys are built
  on other connections while Python still writes the next table's rows;
* each table is VACUUM (ANALYZE)d when its last index is built, and a CHECKPOINT
  ends the load, so the migration does not start behind autovacuum or a
  checkpoint flushing the load.

The same generator writes the same bytes; the result is the same database, as a
scenario proves by comparing both paths' fingerprints. Work that fails leaves
the database as empty as it was: the objects the load created are dropped.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from harness.connections import Conn, connect
from harness.legacy.data import COLUMNS, generate
from harness.progress import Progress

__all__ = [
    "LoadVolume",
    "advance_sequences",
    "bulk_load",
    "checkpoint",
    "drop_created",
    "objects",
    "split_statements",
]

# Built from many sessions at once, each gets a share of the sort memory the plain
# load gives its one session: two builders stay under what one plain load used.
_SESSION = (
    "SET search_path = public",
    "SET maintenance_work_mem = '256MB'",
    "SET work_mem = '64MB'",
    # The load is all or nothing anyway; waiting for each commit's WAL flush is not.
    "SET synchronous_commit = off",
)
_PRIMARY_KEYS = """
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.contype = 'p' AND n.nspname = 'public'
     ORDER BY 1
"""
# What a failed load must drop: everything in the database's own schemas that was not
# there before. Relations, functions and free-standing types (not a table's row type).
_OBJECTS = """
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
           c.oid::regclass::text
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
    UNION ALL
    SELECT 'ROUTINE', p.oid::regprocedure::text
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
    UNION ALL
    SELECT 'TYPE', t.oid::regtype::text
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'r', 'm') AND t.typelem = 0
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""
# Identity and serial columns alike: pg_get_serial_sequence answers for both.
_SEQUENCE_COLUMNS = """
    SELECT c.oid::regclass::text, a.attname,
           pg_get_serial_sequence(c.oid::regclass::text, a.attname)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
       AND pg_get_serial_sequence(c.oid::regclass::text, a.attname) IS NOT NULL
"""
_DROP_ORDER = ("VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE", "SEQUENCE", "ROUTINE")
_DEADLOCK_RETRIES = 5


@dataclass
class LoadVolume:
    """What went in: rows and COPY-text bytes per table, for the gate's time table."""

    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Statement:
    sql: str
    tables: frozenset[str]
    after: tuple[int, ...]


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script, each without its ``;``: quotes, dollar-quoted
    bodies and comments may hold semicolons, which do not end a statement."""
    statements: list[str] = []
    start = i = 0
    n = len(script)
    while i < n:
        ch = script[i]
        if script.startswith("--", i):
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
        elif script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "'" or ch == '"':
            end = script.find(ch, i + 1)
            # A doubled quote inside is an escaped quote: the scan simply resumes after it.
            i = n if end < 0 else end + 1
        elif ch == "$" and (tag := re.match(r"\$[A-Za-z_0-9]*\$", script[i:])) is not None:
            end = script.find(tag.group(), i + len(tag.group()))
            i = n if end < 0 else end + len(tag.group())
        elif ch == ";":
            statements.append(script[start:i])
            start = i = i + 1
        else:
            i += 1
    statements.append(script[start:])
    return [s.strip() for s in statements if _without_comments(s).strip()]


def _without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _plan(statements: Iterable[str], *, tables: Iterable[str]) -> list[_Statement]:
    """Each statement with the tables it names, after the earlier ones that name one of them.

    A statement runs once the rows of every table it names are in and every earlier
    statement on those tables is done, so the script's own order holds per table
    (a foreign key after the key it references) while other tables go ahead.
    """
    names = list(tables)
    words = {t: re.compile(rf"(?<![\w.\"]){re.escape(t)}(?![\w\"])") for t in names}
    planned: list[_Statement] = []
    for text in statements:
        named = frozenset(t for t in names if words[t].search(_without_comments(text)))
        # A statement naming no loaded table (a function, a comment on the database)
        # keeps its place after everything before it.
        after = tuple(i for i, earlier in enumerate(planned) if not named or earlier.tables & named)
        planned.append(_Statement(text, named, after))
    return planned


class _Builders:
    """Runs planned statements on ``workers`` sessions as their tables' rows arrive."""

    def __init__(self, dsn: str, plan: list[_Statement], *, workers: int) -> None:
        self.dsn, self.plan = dsn, plan
        self.loaded: set[str] = set()
        self.started: set[int] = set()
        self.done: set[int] = set()
        self.failure: BaseException | None = None
        self.ready: list[int] = []
        self.cond = threading.Condition()
        self.conns: list[Conn] = []
        self.threads = [
            threading.Thread(target=self._work, name=f"pgcutover-build-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def table_loaded(self, table: str) -> None:
        with self.cond:
            self.loaded.add(table)
            self._release()

    def _release(self) -> None:
        for i, statement in enumerate(self.plan):
            if i in self.started or not statement.tables <= self.loaded:
                continue
            if all(j in self.done for j in statement.after):
                self.started.add(i)
                self.ready.append(i)
        self.cond.notify_all()

    def _finished(self) -> bool:
        return self.failure is not None or len(self.done) == len(self.plan)

    def _work(self) -> None:
        conn: Conn | None = None
        try:
            while True:
                with self.cond:
                    self.cond.wait_for(lambda: self.ready or self._finished())
                    if self._finished():
                        return
                    index = self.ready.pop(0)
                if conn is None:
                    conn = connect(self.dsn, application_name="pgcutover bulk load")
                    with self.cond:
                        self.conns.append(conn)
                    for setting in _SESSION:
                        conn.execute(setting)
                _run(conn, self.plan[index].sql)
                with self.cond:
                    self.done.add(index)
                    self._release()
        except BaseException as exc:  # handed to the loading thread, which raises it
            with self.cond:
                if self.failure is None:
                    self.failure = exc
                self.cond.notify_all()
        finally:
            if conn is not None:
                conn.close()

    def check(self) -> None:
        with self.cond:
            if self.failure is not None:
                raise self.failure

    def wait(self) -> None:
        with self.cond:
            self.cond.wait_for(self._finished)
        self.check()

    def stop(self) -> None:
        """End every session: a statement still running is cancelled, not waited for."""
        with self.cond:
            if not self._finished():
                self.failure = self.failure or RuntimeError("load abandoned")
            self.cond.notify_all()
            conns = list(self.conns)
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=5)
        for thread in self.threads:
            thread.join(timeout=30)


def _run(conn: Conn, statement: str) -> None:
    # Two sessions adding foreign keys lock both tables of each key; the server breaks
    # the rare cycle by failing one, which then simply goes again.
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            conn.execute(statement.encode())
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == _DEADLOCK_RETRIES - 1:
                raise


def bulk_load(
    dsn: str, *, pre_data: str, post_data: str, scale: int, say: Progress, workers: int = 2
) -> LoadVolume:
    """Load the built-in database at ``scale`` into the empty database at ``dsn``.

    ``workers``: sessions that build keys and indexes while the rows are copied.
    On any failure (Ctrl-C included) what the load created is dropped again.
    """
    with connect(dsn, application_name="pgcutover bulk load") as conn:
        before = objects(conn)
        try:
            return _load(
                conn, dsn, pre_data=pre_data, post_data=post_data, scale=scale, say=say,
                workers=workers,
            )  # fmt: skip
        except BaseException:
            drop_created(dsn, before=before)
            raise


def _load(
    conn: Conn, dsn: str, *, pre_data: str, post_data: str, scale: int, say: Progress, workers: int
) -> LoadVolume:
    for setting in _SESSION:
        conn.execute(setting)
    say("creating tables, types and functions")
    with conn.transaction():
        conn.execute(pre_data.encode())
        keys = conn.execute(_PRIMARY_KEYS).fetchall()
        for table, name, _ in keys:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(str(table)), sql.Identifier(str(name))
                )
            )
    tables = list(COLUMNS)
    script = [
        *(f"ALTER TABLE {table} ADD CONSTRAINT {name} {key}" for table, name, key in keys),
        *split_statements(post_data),
        *(f"VACUUM (ANALYZE) {table}" for table in tables),
    ]
    plan = _plan(script, tables=tables)
    volume = LoadVolume()
    builders = _Builders(dsn, plan, workers=workers)
    try:
        for table in generate(scale=scale):
            say(f"copying {table.rows:,} rows into {table.table}")
            copied = _copy(conn, table.table, table.columns, table.chunks)
            volume.rows[table.table], volume.bytes[table.table] = table.rows, copied
            builders.check()
            builders.table_loaded(table.table)
        say("adding keys, indexes, triggers, functions and views; vacuuming")
        builders.wait()
    finally:
        builders.stop()
    _advance_sequences(conn)
    checkpoint(conn, say=say)
    return volume


def _copy(conn: Conn, table: str, columns: tuple[str, ...], chunks: Iterable[str]) -> int:
    """COPY ``chunks`` into ``table``, frozen; the bytes sent."""
    copied = 0
    with conn.transaction(), conn.cursor() as cur:
        # FREEZE needs the table created or truncated in this very transaction.
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FREEZE)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with cur.copy(copy_sql) as copy:
            for chunk in chunks:
                data = chunk.encode()
                copied += len(data)
                copy.write(data)
    # PostgreSQL 15 sends a session's table statistics at most once a second: the
    # rows counted after a builder's ANALYZE would tell autovacuum to analyze again.
    conn.execute("SELECT pg_stat_force_next_flush()")
    return copied


def _advance_sequences(conn: Conn) -> None:
    with conn.transaction(), conn.cursor() as cur:
        advance_sequences(cur)


def advance_sequences(cur: psycopg.Cursor[TupleRow]) -> None:
    """Rows were copied with explicit ids; the next default id must come after them."""
    for table, column, sequence in cur.execute(_SEQUENCE_COLUMNS).fetchall():
        cur.execute(
            sql.SQL("SELECT setval({}, coalesce(max({}), 0) + 1, false) FROM {}").format(
                sql.Literal(sequence), sql.Identifier(str(column)), sql.SQL(str(table))
            )
        )


def checkpoint(conn: Conn, *, say: Progress) -> None:
    """Flush the load now, rather than in the middle of the gate's first step."""
    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        # PostgreSQL 15: superusers and members of pg_checkpoint only.
        say("not allowed to CHECKPOINT (grant pg_checkpoint to do so); the load is in")


def objects(conn: Conn) -> set[tuple[str, str]]:
    """(kind, name) of every relation, routine and type in the database's own schemas."""
    return {(str(kind), str(name)) for kind, name in conn.execute(_OBJECTS).fetchall()}


def drop_created(dsn: str, *, before: set[tuple[str, str]]) -> None:
    """Drop what the load created, on a new session: the loading one may be mid-COPY."""
    with connect(dsn, application_name="pgcutover bulk load cleanup") as conn:
        new = objects(conn) - before
        for kind in (*_DROP_ORDER, "TYPE"):
            for found_kind, name in sorted(new):
                if found_kind != kind:
                    continue
                conn.execute(
                    sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(kind), sql.SQL(name))
                )
