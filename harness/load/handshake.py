"""What a new connection costs on each path, and how many the servers had to open.

A pooler's saving is the connections its servers do not open: each is a backend's
start and, against a hosted database, a TLS handshake and SCRAM's key derivation.
The comparison measures, before any load, how long opening one connection takes on
each path the instances use, and counts the server connections each side opened
during its runs (``pg_stat_database.sessions``, PostgreSQL 14 and later), so the
report says what a cold start pays on each side and what the pooling saved.
"""

from __future__ import annotations

import statistics
import time

import psycopg

from harness.connections import connect, connect_kwargs

__all__ = ["SAMPLES", "open_ms", "server_sessions"]

#: connections opened (and closed) per path: enough for a median that one slow one cannot move
SAMPLES = 10


def open_ms(url: str, *, samples: int = SAMPLES) -> float | None:
    """The median time to open one connection to ``url`` and be ready for a query (ms).

    Each is opened as an instance's driver opens it (not through the harness's pool)
    and closed at once; None when the path refuses connections.
    """
    times: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        try:
            conn = psycopg.connect(url, autocommit=True, **connect_kwargs(timeout=5))
        except psycopg.OperationalError:
            return None
        times.append((time.perf_counter() - started) * 1000)
        conn.close()
    return statistics.median(times)


def server_sessions(urls: list[str]) -> int | None:
    """The sessions the servers behind ``urls`` have opened on their database, summed.

    Read through the same paths the instances use (a PgBouncer passes the query to its
    server); None where a server does not count them (before PostgreSQL 14).
    """
    total = 0
    for url in urls:
        try:
            with connect(url, timeout=5) as conn:
                row = conn.execute(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                ).fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return None
        total += int(row[0])
    return total
