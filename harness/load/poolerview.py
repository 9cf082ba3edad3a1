"""PgBouncer's own view of a run: how long clients waited for a server connection.

Locust sees a request's whole time; PgBouncer knows which part of it was spent
queued for a server connection (``SHOW POOLS``: ``cl_waiting``, ``maxwait``) and
how long its transactions and queries took on the server (``SHOW STATS``' totals,
in microseconds). So while the target runs, a thread of this process samples each
PgBouncer's admin console once a second; the report shows the worst queue and the
run's averages per transaction, which say whether a slow target waits in the
pooler or somewhere else.

The averages are the totals' growth over the run divided by the transactions (or
queries) run meanwhile, not ``SHOW STATS``' ``avg_*`` columns: those cover only
PgBouncer's last stats period, and before 1.21 its ``avg_wait_time`` is waiting per
second of wall time (all clients together), not per transaction.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from harness.connections import Conn, bounded, connect
from harness.dsn import redact

__all__ = ["PoolerView", "sample_poolers"]

#: seconds between two samples
INTERVAL = 1.0
#: each average the report keeps: (SHOW STATS total in µs, the count it is divided by)
AVERAGES = {
    "avg_wait_time": ("total_wait_time", "total_xact_count"),
    "avg_xact_time": ("total_xact_time", "total_xact_count"),
    "avg_query_time": ("total_query_time", "total_query_count"),
}


@dataclass(kw_only=True)
class PoolerView:
    """The worst and the last of one PgBouncer's numbers over a run (times in ms)."""

    console: str
    samples: int = 0
    max_cl_waiting: int = 0
    max_cl_active: int = 0
    max_sv_active: int = 0
    max_maxwait_ms: float = 0.0
    averages_ms: dict[str, float] = field(default_factory=dict)
    #: SHOW STATS' totals over the application's databases, at the first sample
    first_totals: dict[str, int] | None = None
    #: the pool mode PgBouncer reports for the application's pools (what really ran)
    pool_mode: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "console": self.console,
            "samples": self.samples,
            "max_cl_waiting": self.max_cl_waiting,
            "max_cl_active": self.max_cl_active,
            "max_sv_active": self.max_sv_active,
            "max_maxwait_ms": self.max_maxwait_ms,
            "averages_ms": dict(self.averages_ms),
            "pool_mode": self.pool_mode,
            "error": self.error,
        }


def _rows(conn: Conn, query: str) -> list[dict[str, Any]]:
    with bounded(conn, timeout=5.0):
        # prepare=False: PgBouncer's admin console speaks only the simple query protocol
        cur = conn.execute(query, prepare=False)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _sample(conn: Conn, view: PoolerView) -> None:
    # The harness's own pools (the pgbouncer admin database) are not the application's.
    pools = [p for p in _rows(conn, "SHOW POOLS") if p.get("database") != "pgbouncer"]
    stats = [s for s in _rows(conn, "SHOW STATS") if s.get("database") != "pgbouncer"]
    view.samples += 1
    view.max_cl_waiting = max(view.max_cl_waiting, sum(int(p["cl_waiting"]) for p in pools))
    view.max_cl_active = max(view.max_cl_active, sum(int(p["cl_active"]) for p in pools))
    view.max_sv_active = max(view.max_sv_active, sum(int(p["sv_active"]) for p in pools))
    for pool in pools:
        view.pool_mode = str(pool.get("pool_mode") or view.pool_mode or "") or None
        wait = int(pool["maxwait"]) * 1000 + int(pool.get("maxwait_us") or 0) / 1000
        view.max_maxwait_ms = max(view.max_maxwait_ms, wait)
    keys = {key for pair in AVERAGES.values() for key in pair}
    totals = {k: sum(int(s.get(k) or 0) for s in stats) for k in keys}
    if view.first_totals is None:
        view.first_totals = totals
        return
    grown = {k: totals[k] - view.first_totals[k] for k in keys}
    view.averages_ms = {
        name: grown[total] / grown[count] / 1000
        for name, (total, count) in AVERAGES.items()
        if grown[count] > 0
    }


def _watch(dsn: str, view: PoolerView, stop: threading.Event) -> None:
    try:
        with connect(dsn, timeout=5.0, application_name="pgcutover_load_view") as conn:
            while True:
                _sample(conn, view)
                if stop.wait(INTERVAL):
                    _sample(conn, view)  # the averages as the run ended
                    return
    except psycopg.Error as exc:
        view.error = redact(str(exc)).strip() or type(exc).__name__


@contextlib.contextmanager
def sample_poolers(consoles: Sequence[str]) -> Iterator[list[PoolerView]]:
    """Sample each admin console while the block runs; the views are complete after it."""
    views = [PoolerView(console=redact(dsn)) for dsn in consoles]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_watch, args=(dsn, view, stop), daemon=True)
        for dsn, view in zip(consoles, views, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        yield views
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15.0)
