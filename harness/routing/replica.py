"""What the router knows about the replica: is it up, how far behind, has it replayed a write.

PgBouncer knows nothing of replica health. With the replica down, PgBouncer
1.18 in front of it still accepts logins (it has the server parameters
cached) and then parks every query until ``query_wait_timeout`` (120 sec by
default); it ignores a cancel request for a query that has no server yet. So
the router must find out by itself, must never wait on PgBouncer unbounded,
and must not ask on every request: a background thread probes the replica
(every ``check_interval`` while healthy, with exponential backoff while not)
and publishes one boolean the request path reads for free.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from harness.connections import Conn, Lsn, connect, describe, fetch_bounded
from harness.dsn import redact
from harness.errors import UsageError

__all__ = ["ReplicaMonitor", "ReplicaPolicy", "ReplicaState"]

logger = logging.getLogger("harness.routing")


@dataclass(frozen=True)
class ReplicaPolicy:
    """When reads may go to the replica, and how its health is watched (seconds, bytes)."""

    #: reads go to the writer while the replica is further behind than this
    max_lag_bytes: int = 16 * 1024 * 1024
    max_lag_seconds: float = 10.0
    #: how long a read after a write waits for the replica to replay it
    read_your_writes_wait: float = 0.5
    #: probe period while the replica is healthy
    check_interval: float = 1.0
    #: first and longest pause between probes while it is not
    retry_min: float = 0.05
    retry_max: float = 1.0
    #: a probe that gets no answer within this is a failed probe
    probe_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("read_your_writes_wait", "check_interval", "retry_min", "retry_max"):
            if getattr(self, name) < 0:
                raise UsageError(
                    f"replica policy {name} must be >= 0 sec, got {getattr(self, name)}"
                )
        if self.max_lag_bytes < 0 or self.max_lag_seconds < 0:
            raise UsageError(
                f"replica lag bounds must be >= 0, got {self.max_lag_bytes} bytes and "
                f"{self.max_lag_seconds} sec"
            )
        if self.probe_timeout <= 0 or self.retry_min > self.retry_max:
            raise UsageError(
                f"replica policy needs probe_timeout > 0 and retry_min <= retry_max, got "
                f"{self.probe_timeout}, {self.retry_min} and {self.retry_max} sec"
            )


@dataclass(frozen=True)
class ReplicaState:
    """The last probe's verdict; replaced as a whole, so readers never see half an update."""

    available: bool
    usable: bool
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    replay_lsn: Lsn | None = None
    error: str | None = None
    since: float = field(default_factory=time.monotonic)
    checks: int = 0
    failures: int = 0


def _close(conn: Conn | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def _hung(exc: psycopg.Error) -> bool:
    """The probe's query got no answer in time (:func:`harness.connections.bounded`)."""
    return "no answer from the server" in str(exc)


class ReplicaMonitor:
    """A daemon thread that probes the replica and publishes :attr:`usable`.

    ``on_up`` runs when the replica becomes available (the router opens or
    renews its replica pool there); ``on_down`` runs after every failed probe
    (the router breaks reads still stuck on the replica there).

    ``reader`` lends one of the router's reader pool's connections for a probe of the
    replica, when the pool has one to lend at once (see ``Database._lend_reader``);
    when it has none, the replica is probed on a connection of the monitor's own,
    under ``application_name``, kept for the next probes. ``writer`` lends a
    connection to the writer, outside a transaction, for the one query that asks
    where the primary's WAL is: the router lends one of its writer pool's. So the
    probes cost no login of their own (a cold start pays each, TLS and SCRAM in
    production) and no session. When the writer lends none in time, or the query
    fails, the writer's position is unknown for that probe (the lag is the last
    known), and the replica is not called down for it.
    """

    def __init__(
        self,
        *,
        reader_url: str,
        policy: ReplicaPolicy,
        application_name: str,
        writer: Callable[[], AbstractContextManager[Conn]],
        reader: Callable[[], AbstractContextManager[Conn | None]],
        on_up: Callable[[], None],
        on_down: Callable[[], None],
    ) -> None:
        self.policy = policy
        self._reader_url = reader_url
        self._app = application_name
        self._on_up = on_up
        self._on_down = on_down
        self._writer = writer
        self._lend_reader = reader
        self._reader: Conn | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        # (monotonic time, primary LSN) samples the replica had not replayed yet:
        # the oldest one says how long ago the primary was where the replica is now.
        self._behind: collections.deque[tuple[float, Lsn]] = collections.deque(maxlen=4096)
        self._replayed = Lsn(0)
        self.state = ReplicaState(available=False, usable=False)
        #: read on every request; a plain attribute, so reading it costs nothing
        self.usable = False
        self._thread = threading.Thread(target=self._run, name="replica-monitor", daemon=True)

    # -- request path ----------------------------------------------------------------
    def replayed(self, token: Lsn) -> bool:
        """True if the replica is known to have replayed up to ``token`` already."""
        return self._replayed >= token

    def note_replayed(self, lsn: Lsn) -> None:
        if lsn > self._replayed:
            self._replayed = lsn

    def report_failure(self, exc: BaseException) -> None:
        """A request saw the replica fail: stop routing to it now, and probe at once."""
        if self.state.available:
            self._mark_down(exc, source="a read")
            self._on_down()  # other reads may be parked on it in PgBouncer: break them now
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.policy.probe_timeout * 2 + 1)
        _close(self._reader)

    def _run(self) -> None:
        backoff = self.policy.retry_min
        while not self._stopping:
            delay = self.policy.check_interval if self.state.available else backoff
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopping:
                return
            self.check()
            if self.state.available:
                backoff = self.policy.retry_min
            else:
                backoff = min(max(backoff * 2, self.policy.retry_min), self.policy.retry_max)
                self._on_down()

    # -- probing --------------------------------------------------------------------------
    def check(self) -> ReplicaState:
        """Probe once, now, in the calling thread; update and return the state."""
        try:
            primary = self._primary_lsn()
            rows = self._ask_replica()
        except psycopg.Error as exc:
            self._mark_down(exc, source="the health check")
            return self.state
        in_recovery, replay_text = rows[0]
        self._mark_up(primary, Lsn.parse(replay_text) if in_recovery and replay_text else None)
        return self.state

    def _ask_replica(self) -> list[tuple[Any, ...]]:
        query = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
        if self._reader is None:
            with self._lend_reader() as lent:
                if lent is not None:
                    try:
                        return fetch_bounded(lent, query, timeout=self.policy.probe_timeout)
                    except psycopg.Error as exc:
                        # One that died alone (server_lifetime, a pooler restart) is the
                        # pool's to replace; one that hung, a connection of our own
                        # through PgBouncer would hang on too.
                        if _hung(exc):
                            raise
        reused = self._reader is not None
        while True:
            try:
                self._reader = self._reader or self._connect(self._reader_url)
                return fetch_bounded(self._reader, query, timeout=self.policy.probe_timeout)
            except psycopg.Error as exc:
                _close(self._reader)
                self._reader = None
                # A kept connection can die alone (a pooler restart, server_lifetime):
                # one retry on a new one before calling the replica down, unless it
                # hung, which a new connection through PgBouncer would do again.
                if not reused or _hung(exc):
                    raise
                reused = False

    def _connect(self, url: str) -> Conn:
        return connect(url, application_name=self._app, timeout=self.policy.probe_timeout)

    def _primary_lsn(self) -> Lsn | None:
        """Where the primary's WAL is; None when the writer cannot say (its own problem)."""
        query = "SELECT pg_current_wal_lsn()::text"
        try:
            with self._writer() as conn:
                rows = fetch_bounded(conn, query, timeout=self.policy.probe_timeout)
        except psycopg.Error:  # a pool's timeout and its being closed are ones too
            return None
        return Lsn.parse(rows[0][0])

    def _lag(self, primary: Lsn | None, replay: Lsn | None) -> tuple[int | None, float | None]:
        if replay is None:  # the "replica" is not in recovery: it is a primary, never behind
            self._behind.clear()
            return 0, 0.0
        self.note_replayed(replay)
        now = time.monotonic()
        if primary is not None and primary > replay:
            self._behind.append((now, primary))
        while self._behind and self._behind[0][1] <= replay:
            self._behind.popleft()
        seconds = now - self._behind[0][0] if self._behind else 0.0
        if primary is None:
            return self.state.lag_bytes, seconds
        return max(0, primary - replay), seconds

    def _within_bounds(self, lag_bytes: int | None, lag_seconds: float | None) -> bool:
        return (lag_bytes or 0) <= self.policy.max_lag_bytes and (
            lag_seconds or 0.0
        ) <= self.policy.max_lag_seconds

    def _mark_up(self, primary: Lsn | None, replay: Lsn | None) -> None:
        with self._lock:
            old = self.state
            lag_bytes, lag_seconds = self._lag(primary, replay)
            usable = self._within_bounds(lag_bytes, lag_seconds)
            came_back = not old.available
            if came_back:
                try:
                    self._on_up()
                except Exception as exc:  # the pool could not open: stay down, retry later
                    self._mark_down_locked(exc, source="opening the replica pool")
                    return
            self.state = replace(
                old,
                available=True,
                usable=usable,
                lag_bytes=lag_bytes,
                lag_seconds=lag_seconds,
                replay_lsn=replay,
                error=None,
                since=time.monotonic() if came_back else old.since,
                checks=old.checks + 1,
                failures=0,
            )
            self.usable = usable
        if came_back and old.checks:
            logger.info(
                "replica at %s is available again after %.2f sec; reads return to it",
                redact(self._reader_url),
                time.monotonic() - old.since,
            )
        if old.available and old.usable != usable:
            self._log_lag(usable=usable, lag_bytes=lag_bytes, lag_seconds=lag_seconds)

    def _log_lag(self, *, usable: bool, lag_bytes: int | None, lag_seconds: float | None) -> None:
        if usable:
            logger.info(
                "replica caught up (%s bytes, %.2f sec behind); reads return to it",
                lag_bytes,
                lag_seconds or 0.0,
            )
        else:
            logger.warning(
                "replica is %s bytes and %.2f sec behind, more than the bound (%d bytes, "
                "%.2f sec): reads go to the writer until it catches up",
                lag_bytes, lag_seconds or 0.0,
                self.policy.max_lag_bytes, self.policy.max_lag_seconds,
            )  # fmt: skip

    def _mark_down(self, exc: BaseException, *, source: str) -> None:
        with self._lock:
            self._mark_down_locked(exc, source=source)

    def _mark_down_locked(self, exc: BaseException, *, source: str) -> None:
        old = self.state
        self.usable = False
        error = describe(exc)
        self.state = replace(
            old,
            available=False,
            usable=False,
            error=error,
            since=time.monotonic() if old.available or not old.checks else old.since,
            checks=old.checks + 1,
            failures=old.failures + 1,
        )
        if old.available:
            logger.warning(
                "replica at %s failed %s: %s; reads go to the writer until it answers again",
                redact(self._reader_url), source, error,
            )  # fmt: skip
        elif not old.checks:
            logger.warning(
                "replica at %s is unreachable at start: %s; reads go to the writer until it "
                "answers", redact(self._reader_url), error,
            )  # fmt: skip
