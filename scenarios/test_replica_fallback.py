"""The replica stops in the middle of traffic: no read fails, and reads come back to it.

This module stops the session's shared replica, so it lives on its own and
always restarts it (``restart_replica`` in a ``finally``), then waits until the
replica streams again before handing the cluster to the next scenario. Only the
local and docker providers can stop their replica; others skip with the reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from harness.cluster import Cluster
from harness.cluster.docker import DockerCluster
from harness.cluster.local import LocalCluster
from harness.routing import Database, ReplicaPolicy
from harness.testing.fix_legacy import LegacyDatabase

READERS = 4
POLICY = ReplicaPolicy(check_interval=0.2, retry_min=0.05, retry_max=0.5)


@dataclass(frozen=True)
class Read:
    started: float
    seconds: float
    on_replica: bool


class Traffic:
    """Threads reading a product by primary key as fast as they can, recording where."""

    def __init__(self, db: Database, product_id: str) -> None:
        self.db = db
        self.product_id = product_id
        self.reads: list[Read] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(READERS)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                row = self.db.fetchone(
                    "SELECT pg_is_in_recovery(), name FROM products WHERE id = %s",
                    (self.product_id,),
                )
            except Exception as exc:
                self.errors.append(exc)
                continue
            assert row is not None
            self.reads.append(Read(started, time.monotonic() - started, bool(row[0])))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_for(self, *, after: float, on_replica: bool, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            served = [r for r in list(self.reads) if r.started >= after]
            if sum(r.on_replica is on_replica for r in served) >= count:
                return
            assert time.monotonic() < deadline, f"fewer than {count} reads in {timeout} sec"
            time.sleep(0.005)

    def first(self, *, after: float, on_replica: bool, timeout: float) -> Read | None:
        """The first read started after ``after`` and served where asked, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for read in list(self.reads):
                if read.started >= after and read.on_replica is on_replica:
                    return read
            time.sleep(0.005)
        return None


def test_replica_stopped_mid_traffic_loses_no_read_and_is_used_again(
    cluster: Cluster, legacy_database: LegacyDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    if not isinstance(cluster, LocalCluster | DockerCluster) or cluster.replica is None:
        pytest.skip(f"only local and docker clusters stop their replica ({cluster.provider})")
    eps = legacy_database.endpoints
    with Database(eps.writer, eps.reader, replica=POLICY) as db:
        product = db.fetchone("SELECT id FROM products ORDER BY id LIMIT 1")
        assert product is not None
        try:
            with Traffic(db, str(product[0])) as traffic:
                assert traffic.first(after=0, on_replica=True, timeout=10), "no read on replica"
                stopped_at = time.monotonic()
                cluster.replica.stop()
                on_writer = traffic.first(after=stopped_at, on_replica=False, timeout=10)
                assert on_writer is not None, "reads never moved to the writer"
                marked_down = time.monotonic() - stopped_at
                # stay down under load for a few hundred reads: each one must succeed
                traffic.wait_for(after=stopped_at, on_replica=False, count=300, timeout=30)
                assert not db.replica_usable
                # Bounded, although PgBouncer 1.18 parks a query for a dead server (120 s).
                assert db.health_check() == {"write": True, "read": False}
                cluster.restart_replica()
                back_at = time.monotonic()
                on_replica = traffic.first(after=back_at, on_replica=True, timeout=30)
                assert on_replica is not None, "reads never returned to the replica"
                fallbacks = db.stats()["fallbacks"]
        finally:
            if not cluster.replica.running():
                cluster.restart_replica()
            cluster.wait_for_replica()
    assert traffic.errors == []
    during = [r for r in traffic.reads if stopped_at <= r.started < on_replica.started]
    assert any(not r.on_replica for r in during)
    fallback = on_writer.started + on_writer.seconds - stopped_at
    back = on_replica.started + on_replica.seconds - back_at
    slowest = max(r.seconds for r in during)
    with capsys.disabled():
        print(
            f"\nreplica fallback: {len(traffic.reads)} reads, 0 failed; first read served by "
            f"the writer {fallback * 1000:.1f} ms after the stop (replica marked down within "
            f"{marked_down * 1000:.1f} ms); reads back on the replica {back * 1000:.0f} ms "
            f"after it accepted connections again; slowest read during the outage "
            f"{slowest * 1000:.1f} ms"
        )
    assert fallbacks["replica_down"] >= 300
