"""Servers restarted and poolers killed under read and write traffic, on a cluster of its own.

An operator restarts the primary with a plain ``pg_ctl restart`` while the shop
runs: no acknowledged write may be lost, writes may fail only inside the
restart window, and none at all through the retry unit. The replica restarts
and no read fails. PgBouncer is killed; the watcher (what ``harness up`` runs)
brings it back, and writes through the retry unit never fail.

These scenarios break servers on purpose, so they start their own small
cluster instead of disturbing the session's.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from harness.cluster.local import LocalCluster
from harness.cluster.processes import live_postmaster, run_as_owner
from harness.routing import (
    CommitOutcomeUnknown,
    Database,
    ReplicaPolicy,
    RetryPolicy,
    classify,
    run_transaction,
)
from harness.testing.fix_cluster import connect, own_local_cluster

WRITERS = 4
STEADY = 0.4  # seconds of traffic before and after the fault, at least
# Failures may only happen between the fault and this long after it is over: PgBouncer
# retries a failed server login after server_login_retry (1 s) and pools reconnect.
AFTER_WINDOW = 3.0
QUICK = ReplicaPolicy(check_interval=0.2, retry_min=0.05, retry_max=0.5)
RETRY = RetryPolicy(attempts=50, budget=15.0)


@pytest.fixture(scope="module")
def faulty() -> Iterator[LocalCluster]:
    with own_local_cluster(dbname="faults") as cluster:
        with connect(cluster.endpoints.primary) as conn:
            conn.execute("CREATE TABLE acks (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        cluster.wait_for_replica()
        yield cluster


def pg_ctl(cluster: LocalCluster, role: str, action: str) -> float:
    """``pg_ctl ACTION`` of one node as an operator runs it; seconds it took."""
    started = time.monotonic()
    run_as_owner(
        [
            cluster.bins.path("pg_ctl"),
            "-D",
            str(cluster.workdir / role),
            "-l",
            str(cluster.workdir / f"{role}.log"),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            action,
        ],
        what=f"pg_ctl {action} of the {role}",
    )
    return time.monotonic() - started


@dataclass
class Traffic:
    """Writers inserting unique ids (plain or through the retry unit) and a reader counting."""

    db: Database
    retry: bool
    acked: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    read_failed: list[tuple[float, str]] = field(default_factory=list)
    reads: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write) for _ in range(WRITERS)]
        self._threads.append(threading.Thread(target=self._read))

    def _insert(self, conn: psycopg.Connection[tuple[object, ...]], new: int) -> None:
        conn.execute("INSERT INTO acks (id) VALUES (%s)", (new,))

    def _counted(self, _attempt: int, _exc: BaseException) -> None:
        with self._lock:
            self.retries += 1

    def _write(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                new = next(self._ids)
            try:
                if self.retry:
                    run_transaction(
                        self.db,
                        functools.partial(self._insert, new=new),
                        policy=RETRY,
                        on_retry=self._counted,
                    )
                else:
                    with self.db.writer() as conn:
                        self._insert(conn, new)
            except CommitOutcomeUnknown:
                self.unknown.append(new)
            except Exception as exc:
                self.failed.append((time.monotonic(), f"{classify(exc)}: {exc}"))
                time.sleep(0.01)
            else:
                self.acked.append(new)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.db.fetchone("SELECT count(*) FROM acks")
                self.reads += 1
            except Exception as exc:
                self.read_failed.append((time.monotonic(), f"{classify(exc)}: {exc}"))
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        time.sleep(STEADY)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(STEADY)
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def lost(self, dsn: str) -> list[int]:
        """Acknowledged ids the primary does not have."""
        with connect(dsn) as conn:
            rows = conn.execute(
                "SELECT a FROM unnest(%s::bigint[]) a WHERE a NOT IN (SELECT id FROM acks)",
                (self.acked,),
            ).fetchall()
        return [int(str(r[0])) for r in rows]


def _wait_writable(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(cluster.endpoints.writer, prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "PgBouncer's writer did not come back"
            time.sleep(0.05)


@pytest.mark.parametrize("retry", [False, True], ids=["plain", "retry-unit"])
def test_primary_restart_under_traffic_loses_nothing(faulty: LocalCluster, *, retry: bool) -> None:
    eps = faulty.endpoints
    with Database(eps.writer, eps.reader, replica=QUICK) as db, Traffic(db, retry=retry) as t:
        fault = time.monotonic()
        took = pg_ctl(faulty, "primary", "restart")
        over = time.monotonic()
        # The operator's restart keeps the port and every setting: the same DSN answers.
        with connect(eps.primary) as conn:
            row = conn.execute("SELECT current_setting('max_connections')").fetchone()
        assert row == ("300",)
        assert live_postmaster(faulty.workdir / "primary") is not None
        time.sleep(1.0)  # traffic goes on after the restart
    print(
        f"\nprimary restart ({took:.2f} sec) with {'the retry unit' if retry else 'plain writes'}:"
        f" {len(t.acked)} acknowledged, {len(t.failed)} failed, {len(t.unknown)} unknown,"
        f" {t.retries} retries, {len(t.read_failed)} failed reads of {t.reads}"
    )
    assert t.lost(eps.primary) == []
    assert len(t.acked) > 0
    assert t.read_failed == []
    for when, what in t.failed:
        assert fault - 0.1 <= when <= over + AFTER_WINDOW, (
            f"a write failed outside the window: {what}"
        )
    if retry:
        assert t.failed == []
        assert t.unknown == []
    faulty.wait_for_replica()


def test_replica_restart_under_traffic_fails_no_read(faulty: LocalCluster) -> None:
    eps = faulty.endpoints
    with Database(eps.writer, eps.reader, replica=QUICK) as db, Traffic(db, retry=True) as t:
        pg_ctl(faulty, "replica", "restart")
        time.sleep(1.0)
    assert t.read_failed == []
    assert t.failed == []
    assert t.lost(eps.primary) == []
    assert t.reads > 0
    faulty.wait_for_replica()


def test_killed_pgbouncer_is_restarted_and_the_retry_unit_loses_nothing(
    faulty: LocalCluster,
) -> None:
    eps = faulty.endpoints
    bouncer = faulty.bouncers["writer"]
    messages: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what `harness up` does between signals
        while not stop.wait(0.2):
            messages.extend(faulty.watch())

    watcher = threading.Thread(target=watch)
    with Database(eps.writer, eps.reader, replica=QUICK) as db, Traffic(db, retry=True) as t:
        watcher.start()
        try:
            killed = time.monotonic()
            bouncer.process.kill()
            _wait_writable(faulty)
            back = time.monotonic() - killed
            time.sleep(1.0)
        finally:
            stop.set()
            watcher.join(30)
    print(f"\nPgBouncer (writer) killed: accepting again after {back:.2f} sec; {messages}")
    assert any("PgBouncer (writer)" in m and "restarted it in" in m for m in messages)
    assert bouncer.process.running()
    assert t.failed == []
    assert t.unknown == []
    assert t.lost(eps.primary) == []
