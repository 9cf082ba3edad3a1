"""What the application waited on while each step ran: locks, queues, and who blocked whom.

Latency says that a step hurt; the lock sampler says why, and whose fault it
was. Every 50 ms it reads, on the primary and on the replica, each ungranted
``pg_locks`` row of an application backend, ``pg_blocking_pids()`` of that
backend, and what each blocker is (``pg_stat_activity``: its
``application_name``, ``backend_type`` and statement, and the mode it holds on
the same object). Each wait is kept once, keyed by the waiting backend and the
moment its wait began, with the longest duration seen: :class:`LockWait`. The
wait's duration is measured from ``pg_locks.waitstart`` (PostgreSQL >= 14: the
moment the backend went to sleep on the lock, exact) rather than counted in
sampling intervals, so a slow sampler on a busy machine sees a wait late but
never longer than it was: the measured wait is a lower bound of the real one.

A blocker is the migration when its ``application_name`` is the runner's
(``pgcutover <plan> <step>``: :func:`harness.runner.locks.step_application_name`).
On the replica the blocker of a reader is the startup process replaying a lock
taken on the primary; such a wait is the migration's when the migration holds
an ACCESS EXCLUSIVE lock on that relation on the primary (or held it within the
last seconds: replay runs behind the primary).

Per phase the sampler also keeps :class:`LockStats` for the report: the longest
wait, the deepest queue and the statement at the root of it.

During steps it also notes when the migration itself waits for a lock (and, on
the replica, when the replay of its locks does): :mod:`harness.traffic.stall`
leaves those stretches out of the time it judges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from harness.connections import Conn, connect, describe
from harness.traffic.clients import Timeline

__all__ = ["LockSampler", "LockStats", "LockWait", "overlap"]

INTERVAL = 0.05
WAITING_BEHIND = ", itself waiting behind "
TRAFFIC = "pgcutover-traffic"  # the application_name prefix of the traffic's clients
# How long after the migration was seen holding a relation's lock on the primary a
# replica reader still waiting on replay of it is blamed on the migration.
_REPLAY_MEMORY = 10.0

# pg_locks.waitstart is new in PostgreSQL 14; before, the statement's start is the
# closest (an overestimate by the statement's time before it waited).
_SINCE = {True: "l.waitstart", False: "w.query_start"}
_BEGAN = {True: "l.waitstart", False: "NULL::timestamptz"}
_WAITS = """
SELECT w.pid, l.locktype, l.mode, coalesce(l.relation::regclass::text, ''),
       coalesce({since}, w.query_start)::text,
       extract(epoch FROM clock_timestamp() - coalesce({since}, w.query_start))::float8,
       extract(epoch FROM coalesce({since}, w.query_start))::float8,
       coalesce(l.relation::int8, 0),
       b.pid, coalesce(b.backend_type, ''), coalesce(b.application_name, ''),
       left(coalesce(b.query, ''), 300), coalesce(b.wait_event_type = 'Lock', false),
       coalesce((SELECT string_agg(DISTINCT h.mode, '+') FROM pg_locks h
                  WHERE h.pid = b.pid AND h.granted AND h.locktype = l.locktype
                    AND h.database IS NOT DISTINCT FROM l.database
                    AND h.relation IS NOT DISTINCT FROM l.relation
                    AND h.page IS NOT DISTINCT FROM l.page
                    AND h.tuple IS NOT DISTINCT FROM l.tuple
                    AND h.transactionid IS NOT DISTINCT FROM l.transactionid
                    AND h.virtualxid IS NOT DISTINCT FROM l.virtualxid
                    AND h.classid IS NOT DISTINCT FROM l.classid
                    AND h.objid IS NOT DISTINCT FROM l.objid
                    AND h.objsubid IS NOT DISTINCT FROM l.objsubid), ''),
       CASE WHEN b.wait_event_type = 'Lock' THEN coalesce((
         SELECT string_agg(DISTINCT left(c.query, 200) || ' (' || coalesce(c.state, '') || ')',
                           '; ')
           FROM pg_stat_activity c WHERE c.pid = ANY (pg_blocking_pids(b.pid))), '?') END
  FROM pg_stat_activity w
  JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
  LEFT JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid) ON true
  LEFT JOIN pg_stat_activity b ON b.pid = bp.pid
 WHERE w.wait_event_type = 'Lock' AND w.application_name LIKE 'pgcutover-traffic%'
"""
# Who queues for the migration's locks: the runner's session on the primary, the startup
# process replaying them on the replica. While it queues for a table's lock, whoever
# queues behind it waits on the application it waits for, not on what the step does (and
# the runner's lock_timeout cuts that queue). Only table locks: a step that waits on a row
# an application transaction holds is doing its row work, and whoever waits on the rows
# it has already locked waits on the step. The startup process may show no waitstart: its
# wait is then dated from the sample that first saw it.
_QUEUEING = {"primary": "a.application_name LIKE %s", "replica": "a.backend_type = 'startup'"}
_QUEUED = """
SELECT c.now, w.key, w.began
  FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c
  LEFT JOIN LATERAL (
       SELECT DISTINCT concat_ws(' ', l.pid, l.locktype, l.relation, {began}) AS key,
              extract(epoch FROM {began})::float8 AS began
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE NOT l.granted AND l.locktype = 'relation' AND {who}) w ON true
"""
# The migration's ACCESS EXCLUSIVE relation locks on the primary: what the replica replays.
_MIGRATION_HOLDS = """
SELECT c.now, h.rel, h.oid, h.app, h.query
  FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c
  LEFT JOIN LATERAL (
       SELECT l.relation::regclass::text AS rel, l.relation::int8 AS oid,
              a.application_name AS app, left(coalesce(a.query, ''), 300) AS query
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
          AND a.application_name LIKE %s) h ON true
"""


_GIVE_UP = 20  # samples failing in a row: the server is gone, not busy


@dataclass
class LockWait:
    """One application backend's wait for one lock, and who it waited behind.

    ``blocker_kind``: ``migration`` (the runner's session, or on the replica the
    replay of its lock), ``application`` (another of the traffic's requests),
    ``background`` (autovacuum and other server processes, named by
    ``backend_type``), ``replay`` (the replica's startup process replaying a lock
    not taken by the migration), ``other`` (any other session).
    """

    server: str  # "primary" or "replica"
    pid: int
    since: str  # when the wait began, as the server printed it: with pid, the key
    seconds: float  # the longest this wait was seen lasting: a lower bound
    seen_at: float  # time.monotonic() of the last sighting
    phase: str  # the gate's phase when the wait was first seen
    locktype: str
    mode: str  # what the application asked for
    relation: str
    blocker_kind: str = "other"
    blocker: str = ""  # who, in words
    step: str = ""  # the migration step, when blocker_kind is migration
    statement: str = ""  # the blocker's statement
    held: str = ""  # the mode(s) the blocker holds on the object; "" when it is queued
    behind: str = ""  # when the blocker is itself waiting: the statements it waits behind
    start: float = 0.0  # when the wait began: epoch seconds on the server's clock
    relation_oid: int = 0  # the same on a physical replica as on its primary

    @property
    def lock(self) -> str:
        """The lock in words: mode and type, and the table when it is a relation's."""
        what = f"{self.mode} ({self.locktype} lock)"
        return f"{what} on {self.relation}" if self.relation else what


@dataclass
class LockStats:
    longest_wait: float = 0.0
    queue_depth: int = 0
    waited_on: str = ""
    blocker: str = ""
    samples: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "longest_lock_wait_ms": round(self.longest_wait * 1000, 1),
            "queue_depth": self.queue_depth,
            "waited_on": self.waited_on,
            "blocker": self.blocker,
        }

    def __str__(self) -> str:
        if not self.queue_depth:
            return "no application request waited on a lock"
        return (
            f"application requests waited up to {self.longest_wait * 1000:.0f} ms on a lock "
            f"on {self.waited_on or '?'} ({self.queue_depth} queued at most), blocked by "
            f"`{self.blocker or '?'}`"
        )


def _named(wait: LockWait) -> str:
    """The blocker of a wait for the report: its statement, and what it waits behind."""
    named = f"{wait.blocker}: {wait.statement}" if wait.statement else wait.blocker
    return named + (WAITING_BEHIND + wait.behind if wait.behind else "")


def _depth(blocker: str) -> int:
    """How much of the queue a blocker's description explains: none, its head, its root."""
    if not blocker:
        return 0
    return 2 if WAITING_BEHIND in blocker else 1


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _step_of(application: str, prefix: str) -> str:
    """The step label in a runner's application_name, or "" outside a step."""
    label = application[len(prefix) :]
    return label if label.startswith(("up/", "down/")) else ""


class LockSampler:
    """A background thread sampling the lock waits of the traffic's backends.

    ``migration`` is the application_name prefix of the runner's session.
    """

    def __init__(self, dsns: list[str], timeline: Timeline, *, migration: str = "") -> None:
        self.dsns = dsns
        self.timeline = timeline
        self.migration = migration
        self.stats: dict[str, LockStats] = {}
        self.waits: dict[tuple[str, int, str], LockWait] = {}
        self._held: dict[str, tuple[float, str, str]] = {}  # relation -> (seen, step, query)
        # Per server, the lock waits of who takes the migration's locks: each wait ->
        # [when it began, when it was last seen going on or first seen over] (the
        # sampler cannot see the moment between).
        self._queued: dict[str, dict[str, list[float]]] = {"primary": {}, "replica": {}}
        self._sampled: dict[str, float] = {}  # server -> its clock at the last sample
        self._waiting: dict[str, set[str]] = {}  # server -> the waits seen at that sample
        # The migration's ACCESS EXCLUSIVE holds on the primary, per relation: each hold's
        # [first seen, last seen], on the server's clock.
        self._holds: dict[int, list[list[float]]] = {}
        self._holding: set[int] = set()
        self.gaps: list[str] = []  # "phase: error" of each sample lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pgcutover-locks", daemon=True)

    @property
    def _migration_like(self) -> str:
        """A LIKE pattern of the runner's application_name."""
        return self.migration.replace("%", r"\%") + "%"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def all_waits(self) -> list[LockWait]:
        return sorted(self.waits.values(), key=lambda w: -w.seconds)

    def _loop(self) -> None:
        """Sample until stopped. A sample that fails (a replica cancelling the sampler's
        query while it replays a step, a dropped connection) costs that sample and a
        reconnection, and is recorded in :attr:`gaps`: a sampler that stopped silently
        would pass every stall after it."""
        conns: list[tuple[Conn, str, bool]] = []
        try:
            conns = self._connect()
            failing = 0
            while not self._stop.wait(INTERVAL):
                try:
                    self._sample(conns)
                    failing = 0
                except psycopg.Error as exc:
                    self.gaps.append(f"{self.timeline.current}: {describe(exc)}")
                    failing += 1
                    self._close(conns)
                    if failing >= _GIVE_UP:
                        raise
                    conns = self._connect()
        except psycopg.Error as exc:
            # Sampling is evidence: lose it rather than the gate, and say so.
            self.gaps.append(f"{self.timeline.current}: stopped sampling: {describe(exc)}")
        finally:
            self._close(conns)

    def _connect(self) -> list[tuple[Conn, str, bool]]:
        conns: list[tuple[Conn, str, bool]] = []
        try:
            for dsn in self.dsns:
                conn = connect(dsn, timeout=5, application_name="pgcutover lock sampler")
                exact = conn.info.server_version >= 140000
                conns.append((conn, _WAITS.format(since=_SINCE[exact]), exact))
        except BaseException:
            self._close(conns)
            raise
        return conns

    @staticmethod
    def _close(conns: list[tuple[Conn, str, bool]]) -> None:
        for conn, _query, _exact in conns:
            conn.close()

    def _sample(self, conns: list[tuple[Conn, str, bool]]) -> None:
        phase = self.timeline.current
        stats = self.stats.setdefault(phase, LockStats())
        depth = 0
        if phase in self.timeline.steps:
            # Short holds replay on the replica after the step has committed: note them
            # while they are held, to blame the replica's waits on them later.
            self._poll_holds(conns[0][0])
        if phase in self.timeline.steps or phase in self.timeline.owner:
            # The replay of a step's locks runs on after the step, and may queue there.
            for i, (conn, _query, exact) in enumerate(conns):
                self._poll_queued(conn, "replica" if i else "primary", exact=exact)
        else:
            self._pause_queued()
        for i, (conn, query, _exact) in enumerate(conns):
            server = "replica" if i else "primary"
            rows = conn.execute(query, prepare=False).fetchall()
            now = time.monotonic()
            depth += len({r[0] for r in rows})
            for row in rows:
                wait = self._record(server, row, phase=phase, now=now, primary=conns[0][0])
                if wait.seconds > stats.longest_wait:
                    stats.longest_wait = wait.seconds
                    stats.waited_on = wait.relation or wait.locktype
                    stats.waited_on += " (replica)" if i else ""
                # The root of a queue names more than its head: a migration step
                # waiting behind a long transaction is what made everyone wait.
                named = _named(wait)
                if _depth(named) > _depth(stats.blocker):
                    stats.blocker = named
        stats.queue_depth = max(stats.queue_depth, depth)
        stats.samples += 1

    def _record(
        self, server: str, row: tuple[object, ...], *, phase: str, now: float, primary: Conn
    ) -> LockWait:
        (pid, locktype, mode, relation, since, seconds, start, oid,
         bpid, btype, bapp, bquery, _queued, held, behind) = row  # fmt: skip
        key = (server, int(str(pid)), str(since))
        wait = self.waits.get(key)
        if wait is None:
            wait = LockWait(
                server=server,
                pid=key[1],
                since=key[2],
                seconds=0.0,
                seen_at=now,
                phase=phase,
                locktype=str(locktype),
                mode=str(mode),
                relation=str(relation),
                start=float(str(start)),
                relation_oid=int(str(oid)),
            )
            self.waits[key] = wait
        wait.seconds = max(wait.seconds, float(str(seconds or 0.0)))
        wait.seen_at = now
        if bpid is None:
            return wait
        kind, who, step, statement = self._blocker(
            relation=str(relation), btype=str(btype), bapp=str(bapp), bquery=str(bquery),
            primary=primary, phase=phase,
        )  # fmt: skip
        # The migration outranks anyone else in a queue: it is whom the verdict is about.
        if wait.blocker_kind != "migration" or kind == "migration":
            wait.blocker_kind, wait.blocker, wait.statement = kind, who, statement
            wait.step = step or (self.timeline.step_of(phase) if kind == "migration" else "")
            wait.held = str(held)
            wait.behind = " ".join(str(behind or "").split())
        return wait

    def _blocker(
        self, *, relation: str, btype: str, bapp: str, bquery: str, primary: Conn, phase: str
    ) -> tuple[str, str, str, str]:
        """(kind, who, step, statement) of one blocker."""
        if self.migration and bapp.startswith(self.migration):
            return "migration", "the migration", _step_of(bapp, self.migration), _oneline(bquery)
        if btype == "startup":
            held = self._migration_holds(primary, relation)
            if held is not None:
                step, statement = held
                return "migration", "the migration (replayed on the replica)", step, statement
            if self.migration and (phase in self.timeline.steps or phase in self.timeline.owner):
                # During a step or just after it (replay runs behind the primary), the
                # ACCESS EXCLUSIVE locks replayed are the step's: the application takes
                # none, and the gate's checks run after the replica has caught up.
                step = self.timeline.step_of(phase)
                return "migration", "the migration (replayed on the replica)", step, ""
            return "replay", "WAL replay of a lock taken on the primary", "", ""
        if bapp.startswith(TRAFFIC):
            return "application", f"another application request ({bapp})", "", _oneline(bquery)
        if btype and btype != "client backend":
            return "background", f"the {btype}", "", _oneline(bquery)
        app = f"application_name {bapp!r}" if bapp else "no application_name"
        return "other", f"another session ({app})", "", _oneline(bquery)

    def _migration_holds(self, primary: Conn, relation: str) -> tuple[str, str] | None:
        """The step and statement of the migration holding ``relation`` on the primary, now
        or a moment ago."""
        if not self.migration or not relation:
            return None
        self._poll_holds(primary)
        seen = self._held.get(relation)
        now = time.monotonic()
        if seen is None or now - seen[0] > _REPLAY_MEMORY:
            return None
        return seen[1], seen[2]

    def _poll_queued(self, conn: Conn, server: str, *, exact: bool) -> None:
        if not self.migration:
            return
        pattern = (self._migration_like,) if server == "primary" else None
        rows = conn.execute(
            _QUEUED.format(who=_QUEUEING[server], began=_BEGAN[exact]), pattern, prepare=False
        ).fetchall()
        now = float(rows[0][0])
        previous = self._sampled.get(server, now - INTERVAL)
        self._sampled[server] = now
        episodes = self._queued[server]
        waiting = {str(key): began for _now, key, began in rows if key is not None}
        for key, began in waiting.items():
            episodes.setdefault(key, [previous if began is None else float(began), now])
        # Going on, or seen at the last sample and over since: only those. A wait over
        # before the last sample has its end already, and is not stretched again.
        for key in set(waiting) | self._waiting.get(server, set()):
            episodes[key][1] = now
        self._waiting[server] = set(waiting)

    def _pause_queued(self) -> None:
        """Between polls of the queue (the gate's checks), a wait's end is not seen: it
        keeps its last sighting, and the next poll starts afresh."""
        self._sampled.clear()
        self._waiting.clear()

    def _poll_holds(self, primary: Conn) -> None:
        if not self.migration:
            return
        rows = primary.execute(_MIGRATION_HOLDS, (self._migration_like,), prepare=False).fetchall()
        now, clock = time.monotonic(), float(rows[0][0])
        holding = set()
        for _clock, rel, oid, app, query in rows:
            if rel is None:
                continue
            if int(oid) in self._holding and str(rel) in self._held:
                # Still the same hold: keep the statement that took the lock, not the
                # COMMIT that will release it.
                _seen, step, statement = self._held[str(rel)]
            else:
                step, statement = _step_of(str(app), self.migration), _oneline(str(query))
            self._held[str(rel)] = (now, step, statement)
            holding.add(int(oid))
            if int(oid) not in self._holding:
                self._holds.setdefault(int(oid), []).append([clock, clock])
            self._holds[int(oid)][-1][1] = clock
        self._holding = holding

    def held(self, wait: LockWait) -> float:
        """How much of a wait on the migration is the migration's to answer for.

        Not the stretches when it (or the replay of its lock) itself queued for a lock.
        On the replica, no more than the migration held that lock on the primary: the
        replica holds a replayed lock until it replays the commit, and how far behind
        it replays is the machine's load, not the step.
        """
        servers = ("primary", "replica") if wait.server == "replica" else ("primary",)
        queued = [(a, b) for srv in servers for a, b in self._queued[srv].values()]
        part = wait.seconds - overlap(wait.start, wait.start + wait.seconds, queued)
        if wait.server == "replica":
            end = wait.start + wait.seconds
            holds = [h for h in self._holds.get(wait.relation_oid, []) if h[0] <= end]
            # The last hold that began before the wait ended; too short to be seen: none.
            part = min(part, (holds[-1][1] - holds[-1][0] if holds else 0.0) + INTERVAL)
        return max(0.0, part)


def overlap(start: float, end: float, spans: Sequence[tuple[float, float]]) -> float:
    """How much of [start, end] the spans cover (spans may overlap each other)."""
    covered, reached = 0.0, start
    for s, e in sorted(spans):
        s, e = max(s, reached), min(e, end)
        if e > s:
            covered += e - s
            reached = e
    return covered
