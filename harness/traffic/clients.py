"""The application's traffic while the gate works: clients, their requests, a timeline.

Each client is a thread holding its own connections, opened before the first step
and kept to the end, one per (role, path) it needs: reads through the PgBouncer
reader (session pooling on the replica), writes through the PgBouncer writer
(transaction pooling on the primary). Before the first step every client
connection holds a transaction at once, so a pool opens a server connection per
client then; PgBouncer keeps them for up to ``server_lifetime``, so the requests
after a step run on server connections opened before it: the stale-session
hazard, exercised every run. Each request
records the server connection it ran on (backend pid and start), and each write
the tables it changed (``pg_stat_xact_user_tables``, triggers included), so the
checks that compare data know what the traffic touched.

A workload whose driver prepares (``[workload] prepare_threshold``) has its
statements prepared as that driver would (psycopg's threshold, on each client's
connections), so what preparing does behind a pooler happens to the traffic too:
behind a transaction pool that keeps no prepared statements (PgBouncer before 1.21,
or ``max_prepared_statements = 0``), a statement prepared on one server connection
is executed on another. The harness's own queries in a request never prepare.

Bounded: at most the workload's clients, a think time between requests, a
statement timeout per request, loopback DSNs only, and :meth:`Traffic.stop`
joins every thread (they are daemons, so even a killed gate does not hang).
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from harness.connections import DictConn, connect_dicts
from harness.errors import UsageError
from harness.plan.workload import Workload, WorkloadQuery, placeholders
from harness.traffic.conflicts import is_recovery_conflict, replica_side
from harness.traffic.logins import Logins

__all__ = ["BEFORE", "Request", "Timeline", "Traffic", "prepare_params"]

BEFORE = "before the migration"
_MAX_PARAM_ROWS = 1000
WARM_UP_BOUND = 30.0  # sec past the baseline for every path to have served a request
PRIME_BOUND = 5.0  # sec the traffic's connections wait for a server connection each at once
_BACKEND = """
SELECT pg_backend_pid(), backend_start, set_config('statement_timeout', %s, true)
  FROM pg_stat_activity WHERE pid = pg_backend_pid()"""
# A write's transaction id, as logical decoding prints it (the 32-bit xid, without the
# epoch): the change ledger tells the application's commits from the migration's by it.
_XID = "SELECT (pg_current_xact_id()::text::bigint % 4294967296)::bigint AS xid"
_WRITTEN = """
SELECT relname FROM pg_stat_xact_user_tables
 WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"""
Conn = DictConn


@dataclass
class Request:
    """One request as the application saw it."""

    query: str
    role: str | None
    path: str
    kind: str
    client: int
    start: float  # time.monotonic()
    end: float = 0.0
    ok: bool = False
    sqlstate: str | None = None
    message: str = ""
    pid: int | None = None
    backend_start: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)  # parameters, RETURNING columns
    key: int = -1  # which parameter row
    written: tuple[str, ...] = ()
    xid: int | None = None  # a write's transaction, once it has one
    #: a read the replica failed and the router ran again on the primary
    rerouted: bool = False
    #: the replica's recovery-conflict error, its SQLSTATE and when it came (monotonic)
    conflict: str = ""
    conflict_sqlstate: str | None = None
    conflict_at: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Timeline:
    """What the gate was doing when: phases (steps and others) by their start time."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.labels: list[str] = []
        self.steps: set[str] = set()
        self.owner: dict[str, str] = {}  # "after up/003_x.sql" -> "up/003_x.sql"
        self.mark(BEFORE)

    def mark(self, label: str, *, step: bool = False) -> None:
        self.times.append(time.monotonic())
        self.labels.append(label)
        if step:
            self.steps.add(label)

    def mark_after(self, step: str) -> None:
        """The step is done; what runs now (the checks between steps) is not the step."""
        label = f"after {step}"
        self.owner[label] = step
        self.mark(label)

    def step_of(self, phase: str) -> str:
        """The step whose effects a phase sees: itself, or the step it comes after."""
        return self.owner.get(phase, phase)

    @property
    def current(self) -> str:
        return self.labels[-1]

    def phase_at(self, t: float) -> str:
        return self.labels[max(bisect.bisect_right(self.times, t) - 1, 0)]

    def phase_of(self, start: float, end: float) -> str:
        """The phase a request spent most of its time in: a request held up by a step
        belongs to that step, even if it started just before it or ended just after."""
        first = max(bisect.bisect_right(self.times, start) - 1, 0)
        last = max(bisect.bisect_right(self.times, end) - 1, 0)
        best, label = -1.0, self.labels[first]
        for i in range(first, last + 1):
            begin = max(start, self.times[i])
            finish = min(end, self.times[i + 1] if i + 1 < len(self.times) else end)
            if finish - begin > best:
                best, label = finish - begin, self.labels[i]
        return label

    def started(self, label: str) -> float | None:
        return next((t for t, lab in zip(self.times, self.labels, strict=True) if lab == label),
                    None)  # fmt: skip


def prepare_params(admin: str, workload: Workload) -> dict[str, list[dict[str, Any]]]:
    """Each query's parameter rows, drawn from the data before the migration."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with connect_dicts(admin) as conn:
        for q in workload.queries:
            if q.params is None:
                rows[q.name] = [{}]
                continue
            try:
                found = conn.execute(q.params.encode(), prepare=False).fetchmany(_MAX_PARAM_ROWS)
            except psycopg.Error as exc:
                raise UsageError(
                    f"workload query {q.name}: its params query fails before any step ran: "
                    f"{(exc.diag.message_primary or str(exc)).strip()}; fix params in "
                    "[[workload.queries]] of plan.toml"
                ) from None
            if not found:
                raise UsageError(
                    f"workload query {q.name}: its params query returns no rows; the "
                    "request needs parameters drawn from the data"
                )
            rows[q.name] = [dict(r) for r in found]
    return rows


class _Client:
    def __init__(self, traffic: Traffic, index: int) -> None:
        self.traffic = traffic
        self.index = index
        self.random = random.Random(index)
        self.conns: dict[tuple[str | None, str], Conn] = {}
        self.serial = 0
        self.busy = False  # inside a request of its own (under the traffic's lock)

    def open(self) -> None:
        for q in self.traffic.workload.queries:
            key = (q.role, q.path)
            if key not in self.conns:
                self.conns[key] = self._connect(q.role, q.path, read_only=q.kind == "read")

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def pick(self) -> WorkloadQuery:
        queries = self.traffic.workload.queries
        return self.random.choices(queries, weights=[q.weight for q in queries])[0]

    def _row(self, q: WorkloadQuery) -> tuple[int, dict[str, Any]]:
        """A parameter row; writes take only this client's share, so no two clients
        update the same row and the last acknowledged write per row is the one kept."""
        rows = self.traffic.params[q.name]
        clients = self.traffic.clients
        if q.kind == "write" and len(rows) >= clients:
            mine = range(self.index, len(rows), clients)
            i = mine[self.random.randrange(len(mine))]
        else:
            i = self.random.randrange(len(rows))
        return i, rows[i]

    def run(self, q: WorkloadQuery, *, again: Request | None = None, keep: bool = True) -> Request:
        """One request of ``q``; ``again``: with that request's parameters; ``keep=False``:
        its transaction rolled back."""
        self.serial += 1
        key, row = (again.key, again.values) if again is not None else self._row(q)
        token = f"pgcutover-{self.index}-{self.serial}-{self.random.getrandbits(32):08x}"
        req = Request(
            query=q.name,
            role=q.role,
            path=q.path,
            kind=q.kind,
            client=self.index,
            start=time.monotonic(),
            values={**row, "token": token},
            key=key,
        )
        path = q.path
        while True:
            conn = self.conns[(q.role, path)]
            try:
                self._attempt(conn, q, req, read_only=path != q.path, keep=keep)
                req.ok, req.sqlstate, req.message = True, None, ""
            except psycopg.Error as exc:
                req.sqlstate = exc.sqlstate
                req.message = (exc.diag.message_primary or str(exc)).strip()
                if conn.broken:
                    self._reopen(q.role, path)
                if path == "reader" and replica_side(exc, broken=conn.broken):
                    # As the application's router does: a read the replica could not
                    # serve runs again on the primary, once (harness.routing.database).
                    if is_recovery_conflict(exc):
                        req.conflict, req.conflict_sqlstate = req.message, exc.sqlstate
                        req.conflict_at = time.monotonic()
                    req.rerouted = True
                    path = "writer"
                    if (q.role, path) not in self.conns:
                        self._reopen(q.role, path)
                    if (q.role, path) in self.conns:
                        continue
            break
        req.end = time.monotonic()
        return req

    def _attempt(
        self, conn: Conn, q: WorkloadQuery, req: Request, *, read_only: bool, keep: bool = True
    ) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            # As the application's pool does with a connection given back inside a
            # transaction: one request's failure is not every later request's.
            conn.rollback()
        with conn.transaction(force_rollback=not keep):
            # The harness's own queries never prepare: only the application's statements
            # run as its driver runs them, so only they can meet a preparing driver's errors.
            if read_only:  # a read on the writer's connection, as the router makes it
                conn.execute("SET TRANSACTION READ ONLY", prepare=False)
            bound = f"{self.traffic.workload.request_timeout * 1000:.0f}ms"
            info = conn.execute(_BACKEND, (bound,), prepare=False).fetchone()
            if info is not None:
                req.pid, req.backend_start = info["pg_backend_pid"], info["backend_start"]
            if q.kind == "write":
                got = conn.execute(_XID, prepare=False).fetchone()
                req.xid = int(got["xid"]) if got is not None else None
            for statement in q.sql:
                cur = conn.execute(statement.encode(), req.values, prepare=self.prepare)
                if cur.description is not None:
                    found = cur.fetchall()
                    if q.kind == "write" and found:
                        req.values.update(found[0])
            if q.kind == "write":
                written = conn.execute(_WRITTEN, prepare=False).fetchall()
                req.written = tuple(str(r["relname"]) for r in written)

    def _reopen(self, role: str | None, path: str) -> psycopg.Error | None:
        """Open again what broke; the error when the server (or pooler) refuses."""
        old = self.conns.pop((role, path), None)
        if old is not None:
            old.close()
        try:
            self.open()
            if (role, path) not in self.conns:  # a read's retry on the writer
                self.conns[(role, path)] = self._connect(role, path, read_only=False)
        except psycopg.Error as exc:
            return exc
        return None

    @property
    def prepare(self) -> bool | None:
        """``execute(prepare=...)`` for the application's statements: psycopg's choice
        (by the connection's ``prepare_threshold``) where the workload's driver prepares."""
        return None if self.traffic.workload.prepare_threshold is not None else False

    def _connect(self, role: str | None, path: str, *, read_only: bool) -> Conn:
        conn: Conn = connect_dicts(
            self.traffic.logins.dsn(role, path=path),
            application_name=f"pgcutover-traffic-{self.index}",
            prepare_threshold=self.traffic.workload.prepare_threshold,
        )
        conn.read_only = read_only
        return conn

    def loop(self) -> None:
        traffic = self.traffic
        think = traffic.workload.think_time
        while not traffic.stopping.is_set():
            q = self.pick()
            with traffic._lock:  # see Traffic.on_hold
                self.busy = not traffic.held
            if not self.busy:
                traffic.released.wait(think)
                continue
            try:
                self.request(q)
            finally:
                with traffic._lock:
                    self.busy = False
            traffic.stopping.wait(think * (0.5 + self.random.random()))

    def request(self, q: WorkloadQuery) -> None:
        if (q.role, q.path) not in self.conns:
            start = time.monotonic()
            refused = self._reopen(q.role, q.path)
            if refused is not None:
                # The application would have failed this request: a reconnect that
                # fails again is an error it sees, each time, not a pause.
                self.traffic.requests.append(self._refused(q, refused, start=start))
                self.traffic.stopping.wait(0.1)
                return
        self.traffic.requests.append(self.run(q))

    def _refused(self, q: WorkloadQuery, exc: psycopg.Error, *, start: float) -> Request:
        message = (exc.diag.message_primary or str(exc)).strip()
        return Request(
            query=q.name,
            role=q.role,
            path=q.path,
            kind=q.kind,
            client=self.index,
            start=start,
            end=time.monotonic(),
            sqlstate=exc.sqlstate,
            message=f"reconnecting failed: {message}",
        )


class Traffic:
    """The workload's clients, started before the migration and stopped after it."""

    def __init__(
        self,
        workload: Workload,
        logins: Logins,
        params: dict[str, list[dict[str, Any]]],
        *,
        clients: int | None = None,
        pools: Mapping[str, int] | None = None,
    ) -> None:
        """``pools``: the server connections a path's pooler holds for one role at once
        (its ``default_pool_size``); a path not named reaches its server directly."""
        self.workload = workload
        self.logins = logins
        self.params = params
        self.clients = clients or workload.clients
        self.pools = dict(pools or {})
        self.timeline = Timeline()
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self.held = False  # no client starts a request while it is on hold
        self.released = threading.Event()  # set as a hold ends: the clients resume at once
        self._lock = threading.Lock()
        self._clients = [_Client(self, i) for i in range(self.clients)]
        self._threads: list[threading.Thread] = []

    def check_queries(self) -> None:
        """Every query once, as its role on its path, before any step: a query that
        fails now cannot show what a step breaks. Writes are rolled back."""
        client = _Client(self, 0)
        try:
            client.open()
        except psycopg.Error as exc:
            raise UsageError(
                f"the workload's roles cannot log in through PgBouncer: "
                f"{(exc.diag.message_primary or str(exc)).strip()}"
            ) from None
        problems = []
        try:
            for q in self.workload.queries:
                problem = self._try(client, q)
                if problem:
                    problems.append(f"  {q.name} (as {q.role or 'the harness'}, {q.path}): "
                                    + problem)  # fmt: skip
        finally:
            client.close()
        if problems:
            raise UsageError(
                "workload queries fail before any step ran, so they cannot show what a "
                "step breaks; fix them in [[workload.queries]] of plan.toml:\n"
                + "\n".join(problems)
            )

    def _try(self, client: _Client, q: WorkloadQuery) -> str | None:
        conn = client.conns[(q.role, q.path)]
        values = {**self.params[q.name][0], "token": "pgcutover-check"}
        try:
            with conn.transaction(force_rollback=True):
                for statement in q.sql:
                    missing = placeholders(statement) - set(values)
                    if missing:
                        return (
                            f"parameter(s) {', '.join(sorted(missing))} come from neither "
                            "params nor the RETURNING of an earlier statement"
                        )
                    cur = conn.execute(statement.encode(), values, prepare=False)
                    if cur.description is not None and q.kind == "write":
                        found = cur.fetchall()
                        if found:
                            values.update(found[0])
                if q.verify is not None:
                    missing = placeholders(q.verify) - set(values)
                    if missing:
                        return f"verify names parameter(s) {', '.join(sorted(missing))} not given"
                    if conn.execute(q.verify.encode(), values, prepare=False).fetchone() is None:
                        return "verify finds no row right after the write; it must see the write"
        except psycopg.Error as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            if exc.sqlstate == "25006":
                return f'marked read, but it writes ({message}); mark it kind = "write"'
            return f"{message} [SQLSTATE {exc.sqlstate}]"
        return None

    def start(self) -> None:
        """Open every client's connections (before the first step), then run them."""
        try:
            for client in self._clients:
                client.open()
        except BaseException:
            for client in self._clients:
                client.close()
            raise
        self._hold_every_connection_at_once()
        for client in self._clients:
            thread = threading.Thread(
                target=client.loop, name=f"pgcutover-traffic-{client.index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _hold_every_connection_at_once(self, *, bound: float = PRIME_BOUND) -> None:
        """A transaction open on every client connection at once, then rolled back.

        A transaction pool gives a transaction any idle server connection, the most
        recently used first, and opens one more only when all are busy. Without this,
        how many server connections it held before the first step was the baseline's
        busiest instant, and a later burst opened more, which start with the migrated
        database's settings (its ``search_path``, a role's): which requests met the
        stale-session hazard then varied between runs. Held at once, every client
        connection has had a server connection of its own before the migration, so no
        burst of the traffic needs a new one. A pool smaller than the clients is full
        once it holds its ``default_pool_size`` at once: no burst opens more, and the
        rest are let go then. A pool smaller than the plan says keeps them waiting:
        they are let go after ``bound`` seconds.
        """
        groups: dict[tuple[str | None, str], list[Conn]] = {}
        for client in self._clients:
            for key, conn in client.conns.items():
                groups.setdefault(key, []).append(conn)
        wanted = {
            key: min(len(conns), self.pools.get(key[1], len(conns)))
            for key, conns in groups.items()
        }
        held = dict.fromkeys(groups, 0)
        changed = threading.Condition()
        release = threading.Event()

        def count(key: tuple[str | None, str]) -> None:
            with changed:
                held[key] += 1
                changed.notify_all()

        def hold(key: tuple[str | None, str], conn: Conn) -> None:
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute("SELECT 1", prepare=False)
                    count(key)
                    release.wait(bound)
            except psycopg.Error:
                count(key)  # the requests will meet and report what broke here

        threads = [
            threading.Thread(target=hold, args=(key, conn), daemon=True)
            for key, conns in groups.items()
            for conn in conns
        ]
        for thread in threads:
            thread.start()
        with changed:
            changed.wait_for(lambda: all(held[k] >= n for k, n in wanted.items()), timeout=bound)
        release.set()
        for thread in threads:
            thread.join(timeout=bound)

    def warm_up(self, seconds: float, *, bound: float = WARM_UP_BOUND) -> None:
        """Run ``seconds``, and on until each path has served a request (within ``bound``).

        A path with no request before the first step holds no server connection opened
        before it, so its requests after the step could never meet the stale-session
        hazard: ``traffic.old_connections_used`` would fail or pass by chance. A rare
        query on its own path (a write among slow reports) can miss a short baseline.
        """
        if self.stopping.wait(seconds):
            return
        wanted = {q.path for q in self.workload.queries}
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline and not self.stopping.is_set():
            if wanted <= {r.path for r in list(self.requests) if r.ok and r.backend_start}:
                return
            self.stopping.wait(0.01)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=15)
        for client in self._clients:
            client.close()

    @contextmanager
    def on_hold(self, *, timeout: float = 15.0) -> Iterator[None]:
        """No request inside, once those in flight are done (within ``timeout``).

        The harness's own comparisons read every row: beside the application's reads
        (at scale 100 its reports scan whole tables on both cores) they took five times
        as long, and no step of the plan runs meanwhile for the traffic to exercise.
        """
        with self._lock:  # no client between "not held" and marking itself busy
            before, self.held = self.held, True
            self.released.clear()
        deadline = time.monotonic() + timeout
        while any(c.busy for c in self._clients) and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            yield
        finally:
            with self._lock:
                self.held = before
                started = [c.serial for c in self._clients]
            if not before:
                self.released.set()
                self._back_in_stride(started)

    def _back_in_stride(self, started: list[int], *, bound: float = 2.0) -> None:
        """Return once every client has begun a request since the hold ended (within
        ``bound``): what comes next, a step, meets the traffic in flight, as it would
        meet the application's, not the instant it resumes. A step begun then had met
        no read of the replica in flight in 2 gates of 14 (a recovery conflict unseen)."""
        deadline = time.monotonic() + bound
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if all(c.serial > n for c, n in zip(self._clients, started, strict=True)):
                return
            self.stopping.wait(0.002)

    def sweep(self, kinds: Collection[str] = ("read", "write")) -> None:
        """Every query of ``kinds`` sent once now, each from one client's connections
        (opened before the migration), while no client runs a request of its own.

        A window that must show how each query fares in the state the database is in,
        whatever the random draw: a query of weight 1 in 44 is absent from 100 requests
        one time in ten, and waiting for the draw to reach it took a second a window.
        """
        chosen = [q for q in self.workload.queries if q.kind in kinds]
        with self.on_hold():
            with self._lock:  # a request the hold stopped waiting for keeps its client
                idle = [c for c in self._clients if not c.busy]
            for i, q in enumerate(chosen if idle else ()):
                if self.stopping.is_set():
                    return
                idle[i % len(idle)].request(q)

    def again_alone(self, requests: Sequence[Request]) -> list[Request]:
        """Each of ``requests`` once more, with its parameters, on new sessions of its role
        and path, one after another, its transaction rolled back: run once the traffic has
        stopped, whether it fits the workload's ``request_timeout`` with nothing else
        running (:mod:`harness.traffic.timeouts`). None when the sessions cannot open."""
        queries = {q.name: q for q in self.workload.queries}
        client = _Client(self, self.clients)
        try:
            client.open()
            return [client.run(queries[r.query], again=r, keep=False) for r in requests]
        except psycopg.Error:
            return []
        finally:
            client.close()

    def written_tables(self) -> set[str]:
        return {t for r in list(self.requests) if r.ok for t in r.written}
