"""Read/write splitting over two pools: the plan's ``DatabasePool``, done properly.

Behind PgBouncer in transaction pooling nothing may live in the session:
connections never prepare statements (see ``pools``), a search_path is only
ever set with ``SET LOCAL``, and a read that must not touch the primary's data
by mistake runs in ``BEGIN READ ONLY`` on the writer. A one-statement read
(:meth:`Database.fetchall`, :meth:`Database.fetchone`) on the replica runs alone,
outside a transaction: a hot standby refuses every write itself, and ``BEGIN`` and
``COMMIT`` would cost it two more round trips through the pooler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.abc import Params, QueryNoTemplate

from harness.connections import (
    Conn,
    Lsn,
    abort_connection,
    connect_primary,
    describe,
    fetch_bounded,
    insert_lsn,
    wait_for_replay,
)
from harness.dsn import redact
from harness.errors import UsageError
from harness.routing.errors import (
    UNAVAILABLE_KINDS,
    ErrorKind,
    PoolExhausted,
    ReplicaUnavailable,
    WriterUnavailable,
    classify,
)
from harness.routing.pools import (
    READER_POOL,
    WRITER_POOL,
    Pool,
    PoolConfig,
    make_pool,
    urls_from_env,
)
from harness.routing.replica import ReplicaMonitor, ReplicaPolicy, ReplicaState
from harness.routing.schemas import set_local_search_path
from harness.routing.token import ReadToken
from harness.routing.unit import UnitOfWork

__all__ = ["Database"]

logger = logging.getLogger("harness.routing")
T = TypeVar("T")
Row = tuple[Any, ...]


DEFAULT_POLICY = ReplicaPolicy()


@contextmanager
def _autocommit(conn: Conn) -> Iterator[None]:
    """A pooled connection outside a transaction for a moment, for a position query."""
    conn.autocommit = True
    try:
        yield
    finally:
        conn.autocommit = False


def _insert_lsn(conn: Conn) -> Lsn | None:
    """The WAL insert position right now, on an idle pooled connection; None if it broke."""
    try:
        with _autocommit(conn):
            return insert_lsn(conn)
    except psycopg.Error:
        return None


def _after(token: Lsn | ReadToken | None) -> tuple[Lsn | None, str | None]:
    """What a read must wait for, and why it must go to the writer (None: it need not)."""
    if isinstance(token, ReadToken):
        return token.lsn, token.writer_only
    return token, None


class Database:
    """Writes go to the writer; reads go to the replica while it is up, close and answering.

    ``with db.writer() as conn`` and ``with db.reader() as conn`` commit on success
    and roll back on error. ``fetchall``/``fetchone`` are reads that never fail
    because of the replica: if it goes away mid-read they run again on the
    writer. A :meth:`unit_of_work` reads its own writes.

    Pool sizes default to the plan's ``dbConfig`` (writer 2..10, reader 5..20)
    with ``DatabasePool``'s timeouts (2 s to get a connection, idle 30 s / 60 s),
    not ``DatabasePool``'s maxima of 20 and 50: every process has its own pools in
    front of one PgBouncer, whose writer admits 100 clients and whose reader, in
    session mode, holds one of the replica's 60 server connections per client
    connection. Ten processes fit at 10/20; five (writer) or one (reader) at 20/50.
    See :mod:`harness.routing.pools`.
    """

    def __init__(
        self,
        writer_url: str,
        reader_url: str | None = None,
        *,
        writer_pool: PoolConfig = WRITER_POOL,
        reader_pool: PoolConfig = READER_POOL,
        replica: ReplicaPolicy = DEFAULT_POLICY,
        health_application_name: str = "pgcutover_health",
    ) -> None:
        if not writer_url:
            raise UsageError("the writer's connection string is empty; pass DATABASE_URL")
        self.writer_url = writer_url
        self.reader_url = reader_url if reader_url and reader_url != writer_url else None
        self.policy = replica
        self.writer_config = writer_pool
        self.reader_config = reader_pool
        self._health_app = health_application_name
        self._inflight: set[Conn] = set()
        self._up_hooks: list[Callable[[], None]] = []
        self._fallbacks: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._reader_pool: Pool | None = None
        self._monitor: ReplicaMonitor | None = None
        self._closed = False
        self._check_writer()
        self._writer_pool = make_pool(writer_url, writer_pool, read_only=False)
        try:
            if self.reader_url is None:
                self._reader_pool = make_pool(writer_url, reader_pool, read_only=True)
            else:
                self._monitor = ReplicaMonitor(
                    writer_url=writer_url,
                    reader_url=self.reader_url,
                    policy=replica,
                    application_name=health_application_name,
                    on_up=self._replica_up,
                    on_down=self._abort_inflight,
                )
                self._monitor.check()
                self._monitor.start()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Database:
        """From ``DATABASE_URL`` and ``DATABASE_READONLY_URL``; no reader means the writer."""
        writer, reader = urls_from_env(os.environ if environ is None else environ)
        return cls(writer, reader, **options)

    def __repr__(self) -> str:
        reader = redact(self.reader_url) if self.reader_url else "(the writer)"
        return f"<Database writer={redact(self.writer_url)} reader={reader}>"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup ------------------------------------------------------------------------
    def _check_writer(self) -> None:
        try:
            conn = connect_primary(
                self.writer_url,
                subject=f"the writer at {redact(self.writer_url)}",
                fix="point DATABASE_URL at the primary",
                error=WriterUnavailable,
                application_name=self._health_app,
                timeout=self.writer_config.connect_timeout,
            )
        except psycopg.Error as exc:
            error = WriterUnavailable(
                f"cannot connect to the writer at {redact(self.writer_url)}: {describe(exc)}; "
                "check DATABASE_URL and that PostgreSQL (or PgBouncer) is running and accepts "
                "connections"
            )
            error.kind = classify(exc)
            raise error from None  # the cause would print the libpq text unredacted
        conn.close()

    def _replica_up(self) -> None:
        """The replica answers (again): open its pool, or renew every connection in it."""
        assert self.reader_url is not None
        if self._reader_pool is None:
            self._reader_pool = make_pool(self.reader_url, self.reader_config, read_only=True)
        else:
            # Connections made while it was down were refused or parked by PgBouncer, and
            # those from before were cut when it stopped: drain replaces them all, without
            # blocking this thread on any of them.
            self._reader_pool.drain()
        for hook in self._up_hooks:
            hook()

    def _abort_inflight(self) -> None:
        for conn in self._inflight.copy():
            abort_connection(conn)

    # -- checkout -------------------------------------------------------------------------
    def _get(self, pool: Pool, role: str) -> Conn:
        try:
            return pool.getconn()
        except (psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests) as exc:
            raise PoolExhausted(role=role, timeout=pool.timeout, stats=pool.get_stats()) from exc

    def _fallback(self, reason: str) -> tuple[Conn, Pool, bool]:
        with self._lock:
            self._fallbacks[reason] += 1
        conn = self._get(self._writer_pool, "writer")
        try:
            conn.read_only = True
        except psycopg.Error:
            self._writer_pool.putconn(conn)  # broke while idle in the pool: discarded there
            raise
        return conn, self._writer_pool, False

    def _checkout_read(
        self, *, after: Lsn | None, force_writer: str | None
    ) -> tuple[Conn, Pool, bool]:
        """A connection for a read, its pool, and whether it is on the replica."""
        monitor = self._monitor
        pool = self._reader_pool
        if monitor is None and pool is not None:
            return self._get(pool, "reader"), pool, False
        if force_writer is not None:
            return self._fallback(force_writer)
        if monitor is None or pool is None:
            return self._fallback("replica_down")
        if not monitor.usable:
            return self._fallback("replica_lagging" if monitor.state.available else "replica_down")
        try:
            conn = self._get(pool, "reader")
        except PoolExhausted:
            if monitor.usable:
                raise  # load, not an outage: spilling reads onto the writer would spread it
            return self._fallback("replica_down")
        self._inflight.add(conn)
        if after is None or monitor.replayed(after) or self._wait_replay(conn, after):
            return conn, pool, True
        self._inflight.discard(conn)
        pool.putconn(conn)
        return self._fallback("read_your_writes")

    def _wait_replay(self, conn: Conn, token: Lsn) -> bool:
        """Poll the replica until it has replayed ``token``, for a bounded time."""
        assert self._monitor is not None
        try:
            with _autocommit(conn):
                replayed = wait_for_replay(conn, token, timeout=self.policy.read_your_writes_wait)
        except psycopg.Error as exc:
            self._replica_failed(exc, conn)
            return False
        if replayed is None:
            return False
        self._monitor.note_replayed(replayed)
        return True

    def _replica_failed(self, exc: BaseException, conn: Conn) -> bool:
        """Tell the monitor if ``exc`` means the replica went away; True if it does."""
        kind = classify(exc)
        gone = conn.broken or kind in UNAVAILABLE_KINDS
        # A recovery conflict cancels one query on a healthy replica: retry, don't mark down.
        if gone and kind is not ErrorKind.REPLICA_UNAVAILABLE and self._monitor is not None:
            self._monitor.report_failure(exc)
        return gone

    # -- the public face ---------------------------------------------------------------------
    @contextmanager
    def writer(
        self, *, search_path: Sequence[str] = (), token: ReadToken | None = None
    ) -> Iterator[Conn]:
        """A connection to the writer, in a transaction committed when the block ends.

        After the commit, the write's WAL position goes into ``token``: reads
        given that token see the write.
        """
        pool = self._writer_pool
        conn = self._get(pool, "writer")
        try:
            with conn:
                if search_path:
                    conn.execute(set_local_search_path(search_path))
                yield conn
            if token is not None:
                token.wrote(_insert_lsn(conn))
        finally:
            pool.putconn(conn)

    @contextmanager
    def reader(
        self, *, search_path: Sequence[str] = (), after: Lsn | ReadToken | None = None
    ) -> Iterator[Conn]:
        """A read-only connection: the replica's if usable (and past ``after``), else the writer's.

        If the replica fails inside the block, :class:`ReplicaUnavailable` is raised
        (the router already sends the next reads to the writer); use
        :meth:`fetchall` for reads that must not fail.
        """
        lsn, force_writer = _after(after)
        with self._reading(search_path=search_path, after=lsn, force_writer=force_writer) as conn:
            yield conn

    @contextmanager
    def _reading(
        self,
        *,
        search_path: Sequence[str],
        after: Lsn | None,
        force_writer: str | None,
        statement: bool = False,
    ) -> Iterator[Conn]:
        """``statement``: the block runs one statement, alone on the replica (see above)."""
        conn, pool, on_replica = self._checkout_read(after=after, force_writer=force_writer)
        alone = statement and on_replica and not search_path
        try:
            if alone:
                conn.autocommit = True
            try:
                with conn:
                    if search_path:
                        conn.execute(set_local_search_path(search_path))
                    yield conn
            except psycopg.Error as exc:
                if on_replica and self._replica_failed(exc, conn):
                    raise ReplicaUnavailable(
                        f"read on the replica at {redact(self.reader_url or '')} failed: "
                        f"{redact(str(exc)).strip()}; reads go to the writer until it is back"
                    ) from exc
                raise
        finally:
            if alone:
                with contextlib.suppress(psycopg.Error):  # broken: the pool discards it
                    conn.autocommit = False
            if on_replica:
                self._inflight.discard(conn)
            elif pool is self._writer_pool:
                with contextlib.suppress(psycopg.Error):  # broken: the pool discards it
                    conn.read_only = None
            pool.putconn(conn)

    def _read_retrying(self, work: Callable[[Conn], T], *, after: ReadToken | None) -> T:
        lsn, force_writer = _after(after)
        try:
            with self._reading(
                search_path=(), after=lsn, force_writer=force_writer, statement=True
            ) as conn:
                return work(conn)
        except ReplicaUnavailable:
            with self._reading(search_path=(), after=None, force_writer="replica_error") as conn:
                return work(conn)

    def fetchall(
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        after: ReadToken | None = None,
    ) -> list[Row]:
        """All rows of a read (past ``after``); retried on the writer if the replica fails."""
        return self._read_retrying(lambda conn: conn.execute(query, params).fetchall(), after=after)

    def fetchone(
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        after: ReadToken | None = None,
    ) -> Row | None:
        """The first row of a read (past ``after``); retried on the writer if the replica fails."""
        return self._read_retrying(lambda conn: conn.execute(query, params).fetchone(), after=after)

    def unit_of_work(self) -> UnitOfWork:
        """A scope whose reads see its own earlier writes, wherever they are served."""
        return UnitOfWork(self)

    def current_lsn(self) -> Lsn | None:
        """The primary's WAL insert position now: a read-your-writes token for later reads."""
        conn = self._get(self._writer_pool, "writer")
        try:
            return _insert_lsn(conn)
        finally:
            self._writer_pool.putconn(conn)

    def wait_for_replay(self, token: Lsn) -> bool:
        """True once the replica has replayed ``token`` (bounded by the policy's wait)."""
        monitor, pool = self._monitor, self._reader_pool
        if monitor is None:
            return True
        if pool is None or not monitor.usable:
            return False
        if monitor.replayed(token):
            return True
        conn = self._get(pool, "reader")
        self._inflight.add(conn)
        try:
            return self._wait_replay(conn, token)
        finally:
            self._inflight.discard(conn)
            pool.putconn(conn)

    def replica_state(self) -> ReplicaState | None:
        """The monitor's last verdict; None when there is no separate replica."""
        return None if self._monitor is None else self._monitor.state

    @property
    def replica_usable(self) -> bool:
        """Whether plain reads go to the replica right now (True when reader is the writer)."""
        return self._monitor is None or self._monitor.usable

    def report_replica_failure(self, exc: BaseException) -> None:
        """Another client of the replica (the ORM's engine) saw it fail."""
        if self._monitor is not None:
            self._monitor.report_failure(exc)

    def on_replica_up(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` (in the monitor thread) each time the replica becomes available again."""
        self._up_hooks.append(hook)

    def track_replica_connection(self, conn: Any, *, active: bool) -> None:
        """Register a connection whose reads must be broken if the replica goes down."""
        if active:
            self._inflight.add(conn)
        else:
            self._inflight.discard(conn)

    def _ping(self, pool: Pool | None) -> bool:
        if pool is None:
            return False
        timeout = self.policy.probe_timeout
        try:
            conn = pool.getconn(timeout=timeout)
        except psycopg.Error:
            return False
        try:
            with conn:
                fetch_bounded(conn, "SELECT 1", timeout=timeout)
        except psycopg.Error:
            return False
        finally:
            pool.putconn(conn)
        return True

    def health_check(self) -> dict[str, bool]:
        """``{"write": ..., "read": ...}``: does each side answer ``SELECT 1`` right now."""
        return {"write": self._ping(self._writer_pool), "read": self._ping(self._reader_pool)}

    def stats(self) -> dict[str, Any]:
        """Pool counters (psycopg_pool ``get_stats``), replica state and fallbacks by reason."""
        state = self.replica_state()
        with self._lock:
            fallbacks = dict(self._fallbacks)
        return {
            "writer": self._writer_pool.get_stats(),
            "reader": self._reader_pool.get_stats() if self._reader_pool else {},
            "replica": asdict(state) if state else None,
            "fallbacks": fallbacks,
        }

    def close(self) -> None:
        """Stop the monitor and close both pools; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            self._monitor.stop()
        for pool in (self._reader_pool, getattr(self, "_writer_pool", None)):
            if pool is not None:
                pool.close()
