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
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.abc import Params, QueryNoTemplate

from harness.connections import (
    Conn,
    Lsn,
    abort_connection,
    connect_primary,
    connect_timeout,
    describe,
    fetch_bounded,
    insert_lsn,
    is_standby,
    standby_refusal,
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
_WRITER_FIX = "point DATABASE_URL at the primary"
#: how often the wait for the writer pool's first connection looks for a failed login
_LOGIN_STEP = 0.05
# A connection the pool has idle comes at once; psycopg_pool takes a timeout of 0 as spent.
_AT_ONCE = 0.001


@contextmanager
def _autocommit(conn: Conn) -> Iterator[None]:
    """A pooled connection outside a transaction for a moment, for a position query."""
    conn.autocommit = True
    try:
        yield
    finally:
        conn.autocommit = False


@contextmanager
def _lent(pool: Pool, conn: Conn) -> Iterator[Conn]:
    """``conn``, taken from ``pool``, outside a transaction for one query; then given back."""
    try:
        with _autocommit(conn):
            yield conn
    finally:
        pool.putconn(conn)  # broken: the pool discards it and opens another


def _first_connection(pool: Pool, config: PoolConfig) -> Conn | None:
    """A new pool's first connection; None once its login failed or is overdue.

    psycopg_pool keeps a failed login's error to its log and tries again a second
    later, and more slowly after that: whoever waits for a connection meanwhile
    learns nothing until the wait ends. So the wait is in short steps (each ends
    the moment the connection comes) and stops at the first failed login the pool
    counts; it lasts at most as long as libpq may take over that login.
    """
    deadline = time.monotonic() + connect_timeout(config.connect_timeout)
    while (left := deadline - time.monotonic()) > 0:
        try:
            return pool.getconn(timeout=min(left, _LOGIN_STEP))
        except psycopg_pool.PoolTimeout:
            if pool.get_stats().get("connections_errors"):
                return None
    return None


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
        self._inflight: set[Conn] = set()
        self._up_hooks: list[Callable[[], None]] = []
        self._fallbacks: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._reader_pool: Pool | None = None
        # The replica's pool while the first probe runs; then it is _reader_pool, or closed.
        self._opening: Pool | None = None
        self._closer: threading.Thread | None = None
        self._monitor: ReplicaMonitor | None = None
        self._closed = False
        # Opened with the one connection the writer check needs (see _check_writer) and
        # room for no other: psycopg_pool logs in once more for a request that waits
        # while it is below max_size. The rest of min_size once the check has passed.
        self._writer_pool = make_pool(
            writer_url,
            replace(writer_pool, min_size=min(1, writer_pool.min_size), max_size=1),
            read_only=False,
        )
        try:
            self._check_writer()
            self._writer_pool.resize(writer_pool.min_size, writer_pool.max_size)
            if self.reader_url is None:
                self._reader_pool = make_pool(writer_url, reader_pool, read_only=True)
            else:
                self._monitor = ReplicaMonitor(
                    reader_url=self.reader_url,
                    policy=replica,
                    application_name=health_application_name,
                    writer=self._lend_writer,
                    reader=self._lend_reader,
                    on_up=self._replica_up,
                    on_down=self._abort_inflight,
                )
                self._first_probe()
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
        """Check that the writer is a primary, on the writer pool's first connection.

        A cold start pays each login (TLS and SCRAM in production): the check runs
        on the connection the pool makes anyway, and the replica monitor borrows the
        pool's connections for its probes of the writer (:meth:`_lend_writer`), so
        the pool's are the only logins to the writer. The router logs in by itself
        only when the pool could not, once, for libpq's reason.
        """
        conn = _first_connection(self._writer_pool, self.writer_config)
        if conn is None:
            self._diagnose_writer()
            return
        try:
            with _autocommit(conn):
                standby = is_standby(conn, timeout=self.writer_config.connect_timeout)
        except psycopg.Error as exc:
            raise self._writer_unavailable(exc) from None
        finally:
            self._writer_pool.putconn(conn)  # broken: the pool discards it
        if standby:
            raise WriterUnavailable(
                standby_refusal(f"the writer at {redact(self.writer_url)}", fix=_WRITER_FIX)
            )

    def _diagnose_writer(self) -> None:
        """The pool could not log in to the writer: log in directly, once, to say why.

        Raises :class:`WriterUnavailable` with libpq's reason (or the standby
        refusal); returns if the writer answers as a primary after all: the pool's
        login was slow or refused for a moment, and it tries again by itself.
        """
        try:
            conn = connect_primary(
                self.writer_url,
                subject=f"the writer at {redact(self.writer_url)}",
                fix=_WRITER_FIX,
                error=WriterUnavailable,
                application_name=self.writer_config.application_name,
                timeout=self.writer_config.connect_timeout,
            )
        except psycopg.Error as exc:
            raise self._writer_unavailable(exc) from None
        conn.close()

    def _writer_unavailable(self, exc: psycopg.Error) -> WriterUnavailable:
        """The error for a writer that cannot be reached; raise it ``from None``: the
        cause would print the libpq text unredacted."""
        error = WriterUnavailable(
            f"cannot connect to the writer at {redact(self.writer_url)}: {describe(exc)}; "
            "check DATABASE_URL and that PostgreSQL (or PgBouncer) is running and accepts "
            "connections"
        )
        error.kind = classify(exc)
        return error

    @contextmanager
    def _lend_writer(self) -> Iterator[Conn]:
        """One of the writer pool's connections, outside a transaction, for one query.

        The replica monitor's: it asks the writer where its WAL is at every probe. A
        connection of its own would be one more login at every cold start (TLS and
        SCRAM in production) and one more session on the writer for good. Autocommit
        makes the query a transaction of its own: no BEGIN and COMMIT round trips,
        nothing left open, nothing set in the session (PgBouncer's transaction
        pooling hands the server connection on). It waits for a free connection as
        long as a probe may take; a busy pool makes the writer's position unknown
        for that probe, not the replica unavailable.
        """
        pool = self._writer_pool
        with _lent(pool, pool.getconn(timeout=self.policy.probe_timeout)) as conn:
            yield conn

    @contextmanager
    def _lend_reader(self) -> Iterator[Conn | None]:
        """One of the reader pool's connections, outside a transaction, for one probe of
        the replica; None when the pool has none to lend at once.

        A probe connection of the monitor's own would be one more login at every cold
        start. The first probe waits for the connection the pool opens beside it (see
        :meth:`_first_probe`): a replica that refuses it is probed on a connection of
        the monitor's own, which says why. Later probes take an idle connection only:
        a probe that waited would make psycopg_pool log in once more, and with the
        replica down every connection may be parked in PgBouncer, where only the
        monitor's own connection, whose query it bounds, finds out.
        """
        opening, pool = self._opening, self._opening or self._reader_pool
        conn = None
        if opening is not None:
            conn = _first_connection(opening, self.reader_config)
        elif pool is not None and pool.get_stats().get("pool_available"):
            with contextlib.suppress(psycopg_pool.PoolTimeout):  # taken meanwhile
                conn = pool.getconn(timeout=_AT_ONCE)
        if pool is None or conn is None:
            yield None
            return
        with _lent(pool, conn) as lent:
            yield lent

    def _first_probe(self) -> None:
        """Probe the replica for the first time, on its pool's first connection.

        A cold start pays each login (TLS and SCRAM in production): the probe runs on
        the connection the first read needs anyway (see :meth:`_lend_reader`), so the
        pool's are the only logins to the replica. The pool opens with that one
        connection and room for no other (as the writer's, see ``__init__``):
        ``min_size`` logins at once would hold up the first (PgBouncer does every TLS
        handshake on its one thread), and cost that many refused logins when the
        replica is down. The rest are opened once the replica has answered.

        Reads still go to the writer until the probe says the replica is up. If it
        does not, the pool is closed rather than left retrying against a replica
        that is down (a warning each time, for minutes): the replica's first answer
        later opens a pool of its own, as before.
        """
        assert self._monitor is not None
        assert self.reader_url is not None
        config = self.reader_config
        self._opening = make_pool(
            self.reader_url,
            replace(config, min_size=min(1, config.min_size), max_size=1),
            read_only=True,
        )
        self._monitor.check()  # on success _replica_up takes the pool
        unused, self._opening = self._opening, None
        if unused is not None:
            # Its login may still be under way, for up to its connect timeout when the
            # replica does not answer: construction does not wait for it; close() does.
            self._closer = threading.Thread(
                target=unused.close, name="reader-pool-close", daemon=True
            )
            self._closer.start()

    def _replica_up(self) -> None:
        """The replica answers (again): open its pool, or renew every connection in it.

        At construction the pool is already open (see :meth:`_first_probe`): it is kept.
        """
        assert self.reader_url is not None
        if self._reader_pool is None:
            config = self.reader_config
            opened, self._opening = self._opening, None
            if opened is None:  # the replica was down at start: it answers for the first time
                opened = make_pool(self.reader_url, config, read_only=True)
            else:
                # The first probe's answer, on the pool's first connection: nothing to
                # renew; only the rest of min_size to open.
                opened.resize(config.min_size, config.max_size)
            self._reader_pool = opened
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
        for pool in (self._opening, self._reader_pool, self._writer_pool):
            if pool is not None:
                pool.close()
        if self._closer is not None:
            self._closer.join()  # bounded: psycopg_pool waits for its workers a few seconds
