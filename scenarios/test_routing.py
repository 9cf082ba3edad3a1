"""Read/write splitting on the real primary and replica, through PgBouncer as in production.

Every routing claim is checked where the query really ran: ``pg_is_in_recovery()``
is true only on the replica. Scenarios that pause replay on the shared replica
resume it in a ``finally``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from waiting import wait_until

from harness.routing import READER_POOL, WRITER_POOL, Database, ReplicaPolicy
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

Conn = psycopg.Connection[tuple[object, ...]]
# Probe often and back off little, so that state changes show within a fraction of a second.
QUICK = ReplicaPolicy(check_interval=0.05, retry_min=0.02, retry_max=0.2)
_emails = itertools.count(1)


@contextmanager
def replay_paused(replica_dsn: str) -> Iterator[None]:
    """Stop the replica applying WAL (it keeps receiving it); always resume."""
    with connect(replica_dsn) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def new_email() -> str:
    return f"routing-{time.time_ns()}-{next(_emails)}@example.com"


WHERE = "SELECT pg_is_in_recovery()"
CUSTOMER = "SELECT pg_is_in_recovery(), count(*) FROM customers WHERE email = %s"
INSERT = "INSERT INTO customers (email, first_name) VALUES (%s, 'Routing')"


def test_writes_land_on_the_primary_and_reads_on_the_replica(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    # PgBouncer passes application_name on to the server connection it lends, so the
    # server's own view of this backend names the pool. Asked inside the transaction:
    # once it ends, another pool's client (the health check) may borrow that connection.
    seen = (
        "SELECT pg_is_in_recovery(),"
        " (SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid())"
    )
    with Database(eps.writer, eps.reader, replica=QUICK) as db:
        with db.writer() as conn:
            row = conn.execute(seen).fetchone()
        assert row == (False, WRITER_POOL.application_name)
        with db.reader() as conn:
            row = conn.execute(seen).fetchone()
        assert row == (True, READER_POOL.application_name)
        assert db.fetchone(WHERE) == (True,)
        assert db.fetchall("SELECT count(*) FROM products") == [(37,)]
        assert db.health_check() == {"write": True, "read": True}
        assert db.stats()["fallbacks"] == {}


def test_a_write_sent_to_the_reader_fails_wherever_the_read_lands(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    with (
        Database(eps.writer, eps.reader, replica=QUICK) as split,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        split.reader() as conn,
    ):
        conn.execute(INSERT, (new_email(),))
    # Without a replica the reader is the primary, in BEGIN READ ONLY: the same error.
    with Database(eps.writer) as alone:
        with alone.reader() as conn:
            assert conn.execute(WHERE).fetchone() == (False,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), alone.reader() as conn:
            conn.execute(INSERT, (new_email(),))
        with alone.writer() as conn:
            conn.execute(INSERT, (new_email(),))  # the writer still writes


def test_a_one_statement_read_runs_alone_on_the_replica_and_read_only_on_the_writer(
    legacy_database: LegacyDatabase,
) -> None:
    """On the replica no BEGIN and COMMIT: two round trips fewer through the pooler per read.

    Inside a transaction opened by an earlier BEGIN, ``now()`` (the transaction's start)
    is before ``statement_timestamp()``; a statement run alone starts its own transaction.
    """
    eps = legacy_database.endpoints
    alone = "SELECT pg_is_in_recovery(), now() = statement_timestamp()"
    with Database(eps.writer, eps.reader, replica=QUICK) as split:
        assert split.fetchall(alone) == [(True, True)]
        assert split.fetchone(alone) == (True, True)
        with split.reader() as conn:  # a block may run several statements: a transaction
            assert conn.execute(alone).fetchone() == (True, False)
        assert split.fetchone(alone) == (True, True)  # the pooled connection was put back
    with Database(eps.writer) as writer_only:
        read_only = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        assert writer_only.fetchone(read_only) == (False, "on")


def test_from_env_without_a_reader_reads_from_the_writer(
    legacy_database: LegacyDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", legacy_database.endpoints.writer)
    monkeypatch.delenv("DATABASE_READONLY_URL", raising=False)
    with Database.from_env() as db:
        assert db.reader_url is None
        with db.reader() as conn:
            row = conn.execute(f"{WHERE}, current_setting('application_name')").fetchone()
        assert row == (False, READER_POOL.application_name)  # the reader pool on DATABASE_URL
        assert db.health_check() == {"write": True, "read": True}
        assert db.replica_state() is None


def test_read_your_writes_holds_while_replay_is_paused(legacy_database: LegacyDatabase) -> None:
    eps = legacy_database.endpoints
    policy = ReplicaPolicy(read_your_writes_wait=0.3, max_lag_seconds=3600, check_interval=0.05)
    email = new_email()
    with Database(eps.writer, eps.reader, replica=policy) as db, replay_paused(eps.replica):
        with db.unit_of_work() as work:
            with work.writer() as conn:
                conn.execute(INSERT, (email,))
            assert work.token is not None
            # the unit sees its write (from the writer: the replica cannot have it) ...
            assert work.fetchone(CUSTOMER, (email,)) == (False, 1)
            with work.reader() as conn:
                assert conn.execute(CUSTOMER, (email,)).fetchone() == (False, 1)
        # ... while a read outside it goes to the paused replica and misses it:
        # exactly the stale read the token exists to prevent.
        assert db.fetchone(CUSTOMER, (email,)) == (True, 0)
        assert db.stats()["fallbacks"]["read_your_writes"] == 2


def test_read_your_writes_uses_the_replica_once_it_has_replayed(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    email = new_email()
    policy = ReplicaPolicy(read_your_writes_wait=10.0, check_interval=0.05)
    with Database(eps.writer, eps.reader, replica=policy) as db:
        with db.unit_of_work() as work:
            with work.writer() as conn:
                conn.execute(INSERT, (email,))
            assert work.fetchone(CUSTOMER, (email,)) == (True, 1)
        assert db.stats()["fallbacks"] == {}


def test_reads_go_to_the_writer_while_the_replica_lags_too_many_bytes(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    bound = 64 * 1024
    policy = ReplicaPolicy(max_lag_bytes=bound, max_lag_seconds=3600, check_interval=0.05)
    with Database(eps.writer, eps.reader, replica=policy) as db:
        assert db.fetchone(WHERE) == (True,)
        with replay_paused(eps.replica):
            with db.writer() as conn:  # about 2 MB of WAL the replica receives but does not apply
                conn.execute(
                    "CREATE TABLE lag_filler AS "
                    "SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 10000) g"
                )
            wait_until(lambda: not db.replica_usable, timeout=10, what="lag detection")
            state = db.replica_state()
            assert state is not None
            assert state.available
            assert state.lag_bytes is not None
            assert state.lag_bytes > bound
            assert db.fetchone(WHERE) == (False,)
        wait_until(lambda: db.replica_usable, timeout=10, what="the replica catching up")
        assert db.fetchone("SELECT pg_is_in_recovery(), count(*) FROM lag_filler") == (True, 10000)
        assert db.stats()["fallbacks"]["replica_lagging"] >= 1


def test_reads_go_to_the_writer_while_the_replica_lags_too_long(
    legacy_database: LegacyDatabase,
) -> None:
    eps = legacy_database.endpoints
    policy = ReplicaPolicy(max_lag_seconds=0.3, check_interval=0.05)
    with Database(eps.writer, eps.reader, replica=policy) as db:
        with replay_paused(eps.replica):
            with db.writer() as conn:  # a few bytes: only the time bound can trip
                conn.execute(INSERT, (new_email(),))
            wait_until(lambda: not db.replica_usable, timeout=10, what="lag detection")
            state = db.replica_state()
            assert state is not None
            assert state.lag_seconds is not None
            assert state.lag_seconds > 0.3
            assert state.lag_bytes is not None
            assert state.lag_bytes < policy.max_lag_bytes
            assert db.fetchone(WHERE) == (False,)
        wait_until(lambda: db.replica_usable, timeout=10, what="the replica catching up")
        assert db.fetchone(WHERE) == (True,)
