"""What the application waited on while each step ran: locks, queues, blockers.

Latency says that a step hurt; the lock sampler says why. Every 50 ms it reads
``pg_stat_activity`` with ``pg_blocking_pids()`` and the ungranted ``pg_locks``
row of each waiting backend, on the primary and on the replica (a lock the
primary takes is replayed there and blocks the replica's readers too), and keeps,
per phase of the gate: the longest wait of an application request, the deepest
queue of waiting application backends, and the statement that blocked the
longest wait; when that statement (typically the migration's) is itself queued
behind another transaction, that one too: the root of the queue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psycopg

from harness.connections import Conn, connect
from harness.traffic.clients import Timeline

__all__ = ["LockSampler", "LockStats"]

_WAITING = """
SELECT a.pid, extract(epoch FROM now() - coalesce(a.query_start, a.state_change))::float8,
       a.usename::text, left(a.query, 200),
       (SELECT coalesce(l.relation::regclass::text, l.locktype) FROM pg_locks l
         WHERE l.pid = a.pid AND NOT l.granted LIMIT 1),
       (SELECT left(b.query, 200) || CASE WHEN b.wait_event_type = 'Lock' THEN
                 ', itself waiting behind ' || coalesce((
                   SELECT string_agg(DISTINCT left(c.query, 200) || ' (' || c.state || ')', '; ')
                     FROM pg_stat_activity c WHERE c.pid = ANY (pg_blocking_pids(b.pid))), '?')
               ELSE '' END
          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))
         ORDER BY b.wait_event_type = 'Lock' DESC LIMIT 1)
  FROM pg_stat_activity a
 WHERE a.wait_event_type = 'Lock' AND a.application_name LIKE 'pgcutover-traffic%'
"""
INTERVAL = 0.05
WAITING_BEHIND = ", itself waiting behind "  # as _WAITING writes it
_HOLDER = """
SELECT left(a.query, 200) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.relation = to_regclass(%s) AND l.granted AND l.mode = 'AccessExclusiveLock'
 LIMIT 1"""


def _holder(primary: Conn, relation: str) -> str:
    row = primary.execute(_HOLDER, (relation,), prepare=False).fetchone()
    held = " ".join(str(row[0]).split()) if row else "?"
    return f"{held} (on the primary; the replica replays its lock)"


def _depth(blocker: str) -> int:
    """How much of the queue a blocker's description explains: none, its head, its root."""
    if not blocker or blocker.startswith("?"):
        return 0
    return 2 if WAITING_BEHIND in blocker else 1


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


class LockSampler:
    """A background thread sampling lock waits of the traffic's backends."""

    def __init__(self, dsns: list[str], timeline: Timeline) -> None:
        self.dsns = dsns
        self.timeline = timeline
        self.stats: dict[str, LockStats] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pgcutover-locks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        conns: list[Conn] = []
        try:
            for dsn in self.dsns:
                conns.append(connect(dsn, timeout=5))
            while not self._stop.wait(INTERVAL):
                phase = self.timeline.current
                stats = self.stats.setdefault(phase, LockStats())
                depth = 0
                for i, conn in enumerate(conns):
                    rows = conn.execute(_WAITING, prepare=False).fetchall()
                    depth += len(rows)
                    for _pid, waited, _user, _query, relation, blocker in rows:
                        seconds = float(waited or 0.0)
                        named = " ".join(str(blocker or "").split())
                        if i and not named:
                            # On a standby the lock is held by WAL replay (the startup
                            # process, which runs no query): name who took it upstream.
                            named = _holder(conns[0], str(relation or ""))
                        if seconds > stats.longest_wait:
                            stats.longest_wait = seconds
                            stats.waited_on = str(relation or "") + (" (replica)" if i else "")
                        # The root of a queue names more than its head: a migration step
                        # waiting behind a long transaction is what made everyone wait.
                        if _depth(named) > _depth(stats.blocker):
                            stats.blocker = named
                stats.queue_depth = max(stats.queue_depth, depth)
                stats.samples += 1
        except psycopg.Error:
            pass  # sampling is evidence, not a verdict: lose it rather than the gate
        finally:
            for conn in conns:
                conn.close()
