"""A cluster made ready to be copied by ``--clone-from``, and what a copy must not change.

Shared by the clone scenario and the scale benchmark: both start a source of their own,
prepare it as its operator would, and compare its state before and after the gate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.cluster.binaries import find_binaries
from harness.cluster.local import LocalCluster, default_base_dir, start_local_cluster
from harness.connections import Conn, connect, insert_lsn, wait_for_replay
from harness.dsn import child_env, with_database
from harness.legacy import seed

__all__ = ["make_copyable", "positions", "seeded_source", "source_state", "wait_until_quiet"]

#: pg_dump (15.14 and later) fences its output with a \\restrict key drawn at random for
#: each run; every other byte is the database's.
_FENCES = (b"\\restrict ", b"\\unrestrict ")


@contextmanager
def seeded_source(*, scale: int) -> Iterator[LocalCluster]:
    """A server of its own (a primary and its streaming replica) holding the built-in
    database at ``scale`` in ``shop``, stopped and removed after."""
    base = Path(tempfile.mkdtemp(prefix="pgcutover-clone-source-", dir=default_base_dir()))
    base.chmod(0o755)
    cluster = start_local_cluster(dbname="shop", base_dir=str(base))
    try:
        seed(cluster.endpoints.primary, scale=scale)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def make_copyable(cluster: LocalCluster, *, timeout: float = 60.0) -> None:
    """Ready the source for copying, as its operator would, and make it idle.

    Full page writes on (a standby whose primary runs without them refuses to be
    copied; the harness's own clusters run without). Idle: a server still writes WAL
    when a read prunes a page of rows deleted before it, so every dead row is vacuumed
    away first, with nothing holding them (autovacuum off, no replica's
    hot_standby_feedback).
    """
    endpoints = cluster.endpoints
    assert endpoints.replica is not None, "a source to copy needs its streaming replica"
    admin = with_database(endpoints.primary, "postgres")
    with connect(admin) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")  # wait_until_quiet's
        conn.execute("ALTER SYSTEM SET full_page_writes = on")
        conn.execute("ALTER SYSTEM SET autovacuum = off")
        conn.execute("SELECT pg_reload_conf()")
    with connect(endpoints.replica) as conn:
        conn.execute("ALTER SYSTEM SET hot_standby_feedback = off")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + timeout
    with connect(admin) as conn:
        while conn.execute(
            "SELECT 1 FROM pg_stat_replication WHERE backend_xmin IS NOT NULL"
        ).fetchone():
            assert time.monotonic() < deadline, "the replica still holds rows back"
            time.sleep(0.1)
        conn.execute("VACUUM")
    with connect(endpoints.primary) as conn:
        conn.execute("VACUUM")
        # The checkpointer takes up full_page_writes when it gets to the reload: until a
        # checkpoint is made with them on, the standby refuses to be copied.
        conn.execute("CHECKPOINT")
        while not _checkpointed_with_full_pages(conn):
            assert time.monotonic() < deadline, "no checkpoint with full_page_writes on"
            time.sleep(0.05)
            conn.execute("CHECKPOINT")
    # Not cluster.wait_for_replica(): it commits a transaction of its own to flush the WAL
    # it waits for, and this source must stay quiet. The checkpoint is flushed.
    with connect(endpoints.primary) as conn, connect(endpoints.replica) as replica:
        assert wait_for_replay(replica, insert_lsn(conn), timeout=timeout) is not None
    with connect(endpoints.replica) as conn:
        conn.execute("CHECKPOINT")  # a restartpoint at the checkpoint made with them on


def wait_until_quiet(primary: str, replica: str, *, timeout: float = 60.0) -> None:
    """Wait for the idle source's last WAL record of its own, written and replayed.

    After a checkpoint, the background writer logs the running transactions once (it
    does so at most every 15 sec, and only after WAL that matters), and the WAL writer
    writes it out; then an idle server with nothing left to prune or vacuum writes
    nothing: any WAL after that is someone else's doing.
    """
    deadline = time.monotonic() + timeout
    with connect(with_database(primary, "postgres")) as conn, connect(replica) as standby:
        while True:
            records = [
                str(r[0])
                for r in conn.execute(
                    "SELECT record_type FROM pg_get_wal_records_info("
                    "  (SELECT checkpoint_lsn FROM pg_control_checkpoint()),"
                    "  pg_current_wal_flush_lsn())"
                )
            ]
            position = positions(conn, standby)
            if records[1:] == ["RUNNING_XACTS"] and len(set(position)) == 1:
                return
            assert time.monotonic() < deadline, f"the source kept writing WAL: {records}"
            time.sleep(0.5)


def _checkpointed_with_full_pages(conn: Conn) -> bool:
    row = conn.execute("SELECT full_page_writes FROM pg_control_checkpoint()").fetchone()
    return bool(row and row[0])


def positions(primary: Conn, replica: Conn) -> tuple[str, str, str]:
    """The primary's WAL inserted and written, and what its replica replayed."""
    row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    replayed = replica.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
    assert replayed is not None
    return str(insert_lsn(primary)), str(row[0]), str(replayed[0])


def source_state(primary: str, replica: str) -> tuple[bytes, tuple[str, str, str]]:
    """What a clone must not change: the database's dump and both servers' WAL positions."""
    conninfo, env = child_env(primary)
    dump = subprocess.run(
        [find_binaries().path("pg_dump"), "-d", conninfo],
        capture_output=True,
        check=True,
        env=env,
    ).stdout
    dump = b"".join(s for s in dump.splitlines(keepends=True) if not s.startswith(_FENCES))
    with connect(primary) as p, connect(replica) as r:
        return dump, positions(p, r)
