"""What routing costs per query: a primary-key lookup through the router against a bare pool.

Target (issue 4): at most 5 % over a bare psycopg_pool connection, at the median.
Both sides talk to the same replica directly (no PgBouncer, whose own cost is
not the router's), with the same connection settings (``prepare_threshold=None``,
``BEGIN READ ONLY``), so the difference is the router's Python: choosing the
pool, the replica-health check, the bookkeeping of in-flight reads.

Run with ``pytest benchmarks/test_routing_overhead.py --benchmark-enable -s``.
Nothing here asserts a timing; ``test_routing_overhead_ratio`` measures the arms
interleaved in one run and prints the ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg_pool import ConnectionPool
from pytest_benchmark.fixture import BenchmarkFixture

from harness.connections import Conn
from harness.routing import READER_POOL, Database
from harness.testing.fix_legacy import LegacyDatabase

LOOKUP = "SELECT id, name, base_price FROM products WHERE id = %s"
ROUNDS = 12
PER_ROUND = 250


@dataclass
class Arms:
    product_id: str
    pool: ConnectionPool[Conn]
    db: Database

    def bare(self) -> Any:
        with self.pool.connection() as conn:
            return conn.execute(LOOKUP, (self.product_id,)).fetchone()

    def reader(self) -> Any:
        with self.db.reader() as conn:
            return conn.execute(LOOKUP, (self.product_id,)).fetchone()

    def fetchone(self) -> Any:
        return self.db.fetchone(LOOKUP, (self.product_id,))

    # The same checkouts without a query: no round trip, so only Python is timed.
    def bare_checkout(self) -> Any:
        with self.pool.connection() as conn:
            return conn

    def reader_checkout(self) -> Any:
        with self.db.reader() as conn:
            return conn


def _read_only(conn: Conn) -> None:
    conn.read_only = True


@pytest.fixture
def arms(legacy_database: LegacyDatabase) -> Iterator[Arms]:
    eps = legacy_database.endpoints
    pool: ConnectionPool[Conn] = ConnectionPool(
        eps.replica,
        kwargs={"application_name": "bare_pool", "prepare_threshold": None},
        min_size=READER_POOL.min_size,
        max_size=READER_POOL.max_size,
        configure=_read_only,
        open=True,
    )
    pool.wait(timeout=10)
    with pool, Database(eps.primary, eps.replica) as db:
        row = db.fetchone("SELECT id FROM products ORDER BY id LIMIT 1")
        assert row is not None
        yield Arms(str(row[0]), pool, db)


@pytest.mark.benchmark(group="pk-lookup")
def test_pk_lookup_bare_pool(benchmark: BenchmarkFixture, arms: Arms) -> None:
    assert benchmark(arms.bare)[0] == arms.product_id


@pytest.mark.benchmark(group="pk-lookup")
def test_pk_lookup_routed_reader(benchmark: BenchmarkFixture, arms: Arms) -> None:
    assert benchmark(arms.reader)[0] == arms.product_id


@pytest.mark.benchmark(group="pk-lookup")
def test_pk_lookup_routed_fetchone(benchmark: BenchmarkFixture, arms: Arms) -> None:
    assert benchmark(arms.fetchone)[0] == arms.product_id


def test_routing_overhead_ratio(arms: Arms, capsys: pytest.CaptureFixture[str]) -> None:
    calls = {
        "bare pool": arms.bare,
        "db.reader()": arms.reader,
        "db.fetchone()": arms.fetchone,
        "bare checkout": arms.bare_checkout,
        "reader checkout": arms.reader_checkout,
    }
    samples: dict[str, list[int]] = {name: [] for name in calls}
    names = list(calls)
    for call in calls.values():  # warm up: every pool connection opened, caches filled
        for _ in range(50):
            call()
    # Interleaved call by call, the order rotating each round, so that noise from a
    # shared machine (other processes, the server's own work) lands on every arm alike.
    for round_ in range(ROUNDS * PER_ROUND):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter_ns()
            calls[name]()
            samples[name].append(time.perf_counter_ns() - start)
    medians = {name: statistics.median(s) / 1000 for name, s in samples.items()}
    base = medians["bare pool"]
    with capsys.disabled():
        print(f"\n== routing overhead, primary-key lookup on the replica (target: <= 5 % "
              f"at the median; {ROUNDS * PER_ROUND} samples per arm)")  # fmt: skip
        for name in ("bare pool", "db.reader()", "db.fetchone()"):
            median = medians[name]
            print(f"   {name:<16} median {median:8.1f} us   ratio {median / base:6.3f}")
        python = medians["reader checkout"] - medians["bare checkout"]
        print(f"   db.reader() minus pool.connection(), checkout only: {python:+.2f} us, "
              f"{python / base:+.2%} of the bare lookup")  # fmt: skip
    assert arms.db.stats()["fallbacks"] == {}  # every routed read was served by the replica
    assert all(len(s) == ROUNDS * PER_ROUND for s in samples.values())
