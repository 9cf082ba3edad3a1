"""A router's cold start, on the real servers: the logins it makes, and a replica down at start.

Every login costs TLS and SCRAM in production. The router checks the writer on its
pool's first connection, and the replica monitor borrows the pools' connections to
ask the writer's WAL position and the replica's: each server sees its pool's logins
and no other.

The logins are counted by the servers themselves: ``pg_stat_database.sessions`` of
the scenario's own database, on the primary and on the replica, which nothing else
logs in to. The router is pointed at the servers directly, so that each of its
logins is one session there (through PgBouncer they are PgBouncer's to share).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from waiting import wait_until

from harness.cluster.processes import free_port
from harness.dsn import redact, with_database
from harness.routing import READER_POOL, WRITER_POOL, Database, ReplicaPolicy, WriterUnavailable
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

QUICK = ReplicaPolicy(check_interval=0.05, retry_min=0.02, retry_max=0.2)
HEALTH = "pgcutover_health"
WHERE = "SELECT pg_is_in_recovery()"


def sessions(server: str, dbname: str) -> int:
    """Logins to ``dbname`` on ``server`` so far, asked from another database."""
    with connect(with_database(server, "postgres")) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    return 0 if row is None else int(row[0])


def backends(server: str, dbname: str) -> Counter[str]:
    """The sessions on ``dbname`` on ``server`` now, by application_name."""
    with connect(with_database(server, "postgres")) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchall()
    return Counter(str(name) for (name,) in rows)


def test_a_cold_start_logs_in_only_for_its_pools(legacy_database: LegacyDatabase) -> None:
    """Every login the router makes is one of its pools' connections: the writer check
    ran on the writer pool's first connection, the first probe of the replica on the
    replica pool's, and the monitor's probes borrow the pools' idle connections."""
    eps, name = legacy_database.endpoints, legacy_database.name
    before = {server: sessions(server, name) for server in (eps.primary, eps.replica)}
    with Database(eps.primary, eps.replica, replica=QUICK) as db:
        assert db.fetchall(WHERE) == [(True,)]

        def full() -> bool:
            stats = db.stats()
            writer, reader = stats["writer"]["pool_available"], stats["reader"]["pool_available"]
            return bool(writer == WRITER_POOL.min_size and reader >= READER_POOL.min_size)

        wait_until(full, timeout=10, what="both pools filling to min_size")
        wait_until(
            lambda: (state := db.replica_state()) is not None and state.checks >= 5,
            timeout=10,
            what="the monitor probing the writer a few times",
        )
        on_writer = backends(eps.primary, name)
        on_replica = backends(eps.replica, name)
        state = db.replica_state()
        assert state is not None
        assert state.failures == 0
        assert state.lag_bytes is not None  # the writer's position came through the pool
    assert on_writer == {WRITER_POOL.application_name: WRITER_POOL.min_size}
    assert HEALTH not in on_replica
    grown = on_replica[READER_POOL.application_name] - READER_POOL.min_size
    assert grown in (0, 1)  # one more if the first read came before any was ready
    # A session's count is final once it has left pg_stat_activity.
    wait_until(
        lambda: not backends(eps.primary, name) and not backends(eps.replica, name),
        timeout=10,
        what="the router's sessions ending",
    )
    logins = {server: sessions(server, name) - before[server] for server in before}
    assert logins[eps.primary] == WRITER_POOL.min_size, "the check and probes log in for none"
    assert logins[eps.replica] == on_replica.total(), "a login of the replica's was replaced"


def test_the_writer_pool_replaces_a_connection_the_probes_found_dead(
    legacy_database: LegacyDatabase,
) -> None:
    """The monitor's writer probes run on the pool's connections: one that died idle
    fails a probe (the writer's position is unknown for it, the replica no less up)
    and the pool, given it back broken, opens another."""
    eps, name = legacy_database.endpoints, legacy_database.name
    app = WRITER_POOL.application_name
    who = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
    with Database(eps.primary, eps.replica, replica=QUICK) as db:
        with connect(with_database(eps.primary, "postgres")) as admin:

            def pids() -> set[int]:
                return {pid for (pid,) in admin.execute(who, (name, app)).fetchall()}

            wait_until(
                lambda: len(pids()) == WRITER_POOL.min_size, timeout=10, what="the writer pool"
            )
            killed = pids()
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (list(killed),)
            )
            wait_until(
                lambda: len(fresh := pids()) == WRITER_POOL.min_size and not fresh & killed,
                timeout=10,
                what="the pool replacing both connections",
            )
        assert db.stats()["writer"]["returns_bad"] >= 1  # the probes gave back dead ones
        state = db.replica_state()
        assert state is not None
        assert state.available
        assert state.failures == 0  # the writer's loss is not the replica's
        assert db.fetchone(WHERE) == (True,)
        with db.writer() as conn:
            assert conn.execute(WHERE).fetchone() == (False,)
    assert HEALTH not in backends(eps.primary, name)


@pytest.mark.parametrize("case", ["no such database", "nobody listening", "a standby"])
def test_a_writer_the_pool_cannot_use_is_refused_at_once_with_the_reason(
    legacy_database: LegacyDatabase, case: str
) -> None:
    """The pool's failed login is not waited out (psycopg_pool logs it, tries again later):
    libpq's reason comes from one direct login, or the check on the pool's connection
    refuses a standby; either way the pool is closed, its threads gone."""
    eps = legacy_database.endpoints
    writer, reason = {
        "no such database": (
            with_database(eps.primary, "no_such_database"),
            'database "no_such_database" does not exist',
        ),
        "nobody listening": (
            make_conninfo(eps.primary, port=str(free_port())),
            "Connection refused",
        ),
        "a standby": (eps.replica, "is a read-only standby (pg_is_in_recovery() is true)"),
    }[case]
    pool = replace(WRITER_POOL, application_name="cold_start_refused", connect_timeout=10)
    start = time.monotonic()
    with pytest.raises(WriterUnavailable) as info:
        Database(writer, eps.replica, writer_pool=pool, replica=QUICK)
    took = time.monotonic() - start
    message = str(info.value)
    assert message.startswith(
        f"the writer at {redact(writer)}"
        if case == "a standby"
        else f"cannot connect to the writer at {redact(writer)}: "
    )
    assert reason in message
    assert took < pool.connect_timeout / 2, "the wait outlasted the failed login"
    left = [t.name for t in threading.enumerate() if t.name.startswith(pool.application_name)]
    assert left == []


class Forwarder:
    """A port of its own passing connections through to a server: refused until started.

    The replica "down at start" without stopping the shared one: the port is bound
    from the start (nobody else can take it) and only listens once started.
    """

    def __init__(self, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        self.target = (str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432))))
        self.dsn = make_conninfo(dsn, port=str(self._bind()))
        self._sockets: list[socket.socket] = []
        self._pumps: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def _bind(self) -> int:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._listener.listen()
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was shut down
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pumps = [
                threading.Thread(target=self._pump, args=ends, daemon=True)
                for ends in ((client, server), (server, client))
            ]
            with self._lock:
                self._sockets += [client, server]
                self._pumps += pumps
            for pump in pumps:
                pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for side in (source, sink):  # one side ended: end the other's too
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=10)
        self._listener.close()
        with self._lock:
            conns, pumps = list(self._sockets), list(self._pumps)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for pump in pumps:
            pump.join(timeout=10)
        for conn in conns:
            conn.close()


def test_a_replica_down_at_start_reads_from_the_writer_then_from_it_once_it_answers(
    legacy_database: LegacyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The replica pool opened beside the first probe is closed when the probe fails:
    one refused login of its own, then silence (left open, psycopg_pool would retry
    and warn again within about a second, for minutes). The replica's first answer
    later opens its pool, and reads go there."""
    caplog.set_level(logging.WARNING)
    eps = legacy_database.endpoints
    reader = Forwarder(eps.reader)
    try:
        with Database(eps.writer, reader.dsn, replica=QUICK) as db:
            assert db.fetchone(WHERE) == (False,)
            assert db.stats()["reader"] == {}
            # Probes back off to 0.2 sec: 10 failed ones outlast psycopg_pool's first
            # retry (1 sec after its first refused login) had the pool been left open.
            wait_until(
                lambda: (state := db.replica_state()) is not None and state.checks >= 10,
                timeout=10,
                what="ten failed probes",
            )
            assert not db.replica_usable
            assert db.health_check() == {"write": True, "read": False}
            reader.start()
            wait_until(lambda: db.replica_usable, timeout=10, what="the replica answering")
            assert db.fetchone(WHERE) == (True,)
            assert db.fetchall("SELECT count(*) FROM products") == [(37,)]
            assert db.stats()["reader"]["pool_min"] == READER_POOL.min_size
            assert db.health_check() == {"write": True, "read": True}
            assert db.stats()["fallbacks"]["replica_down"] == 1
    finally:
        reader.close()
    pool_warnings = [r for r in caplog.records if r.name.startswith("psycopg.pool")]
    assert len(pool_warnings) <= 1, [r.getMessage() for r in pool_warnings]
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.name == "harness.routing" and r.levelno >= logging.WARNING
    ]
    assert len(ours) == 1
    assert "unreachable at start" in ours[0]
