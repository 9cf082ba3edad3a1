"""A real backup before the first step, and proof that it restores.

A backup nobody has restored is a hope. ``pg_dump`` writes it; it is then
restored into a scratch database and the two fingerprints (structure and data
checksums) are compared: on a server of its own where the cluster offers one
(``Cluster.scratch_server``: the restore then reaches neither the primary's WAL, which
the replica replays and the change ledger decodes, nor the replica), else on the same
server. pg_dump leaves database-level settings (``ALTER DATABASE … SET``) out unless it
dumps with ``--create``, so those are compared separately from the restored copy.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import phases
from harness.catalog import IGNORE_DATABASE, Fingerprint, diff, fingerprint
from harness.cluster.binaries import PgBinaries, client_binaries
from harness.databases import connect, create_database, drop_database
from harness.dsn import child_env, database_of, redact, with_database
from harness.errors import InfrastructureError

__all__ = [
    "Backup",
    "remove_leftovers",
    "restore_jobs",
    "scratch_prefix",
    "take_backup",
    "verify_backup",
]


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int
    seconds: float


def _run(argv: list[str], *, dsn: str, what: str) -> str:
    """Run a client program on ``dsn``, its output; its password goes in the environment,
    never in argv."""
    conninfo, env = child_env(dsn)
    argv = [conninfo if arg == dsn else arg for arg in argv]
    done = subprocess.run(
        # -w: never prompt for a password; nobody is there to answer, the run would hang.
        [argv[0], "-w", *argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
        env=env,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise _Failed(f"{what} failed (exit code {done.returncode}): {redact(tail)}", tail)
    return done.stdout


class _Failed(InfrastructureError):
    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def take_backup(
    dsn: str, *, directory: Path, bins: PgBinaries | None = None, throwaway: bool = False
) -> Backup:
    """A ``pg_dump`` archive of ``dsn``'s database in ``directory``: one compressed file.

    ``throwaway``: a backup removed once its restore is proven (the gate's, of a database
    it made), so a directory archive (``-Fd``) dumped by one session per core, uncompressed.
    At scale 100 it took 2.1 s against 4.5 s, and restored in 10.9 s against 11.8 s, for
    447 MB on disk against 173 MB.
    """
    bins = bins or client_binaries()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    name = f"{database_of(dsn) or 'database'}-{stamp}"
    started = time.perf_counter()
    if throwaway:
        path = directory / name
        form = ["-Fd", "-j", str(restore_jobs()), "-Z", "0"]
    else:
        path = directory / f"{name}.dump"
        # -Z 1: zlib's fastest level. The default (6) spent two thirds of the dump
        # compressing: 15.1 s against 4.9 s at scale 100, for a file 12 % smaller;
        # restoring either takes the same time.
        form = ["-Fc", "-Z", "1"]
    _run([bins.path("pg_dump"), *form, "-f", str(path), "-d", dsn], dsn=dsn, what="pg_dump")
    size = sum(f.stat().st_size for f in path.iterdir()) if throwaway else path.stat().st_size
    phases.note(nbytes=size)
    return Backup(path, size, time.perf_counter() - started)


def verify_backup(
    dsn: str,
    backup: Backup,
    *,
    expected: Fingerprint | None = None,
    bins: PgBinaries | None = None,
    on: str | None = None,
) -> list[str]:
    """Restore ``backup`` into a scratch database; the differences from ``dsn``, if any.

    ``on``: a DSN of another server to restore on (see ``Cluster.scratch_server``); it is
    given ``dsn``'s roles first, since a dump names owners and grantees but holds no role.
    """
    bins = bins or client_binaries()
    if expected is None:
        with connect(dsn) as conn:
            expected = fingerprint(conn)
    if on is not None:
        _copy_roles(dsn, on, bins=bins)
        dsn = on
    scratch = f"{scratch_prefix(dsn)}{os.getpid()}"
    drop_database(dsn, scratch)
    create_database(dsn, scratch)
    try:
        target = with_database(dsn, scratch)
        jobs = str(restore_jobs())
        argv = [bins.path("pg_restore"), "--exit-on-error", "-j", jobs, "-d", target]
        try:
            for sections in PARALLEL_PASSES:
                what = "pg_restore of the backup"
                _run([*argv, *sections, str(backup.path)], dsn=target, what=what)
        except _Failed as exc:
            if "ERROR:" not in exc.stderr:
                raise  # the program, the disk or the connection: not the backup's content
            # The server refused part of the backup: the database holds something its
            # own dump cannot bring back, which a rollback by restore would meet too.
            lines = [line.strip() for line in exc.stderr.splitlines() if line.strip()]
            return [f"pg_restore stops at an error the server raised: {' | '.join(lines[:4])}"]
        with connect(with_database(dsn, scratch)) as conn:
            restored = fingerprint(conn)
    finally:
        drop_database(dsn, scratch)
    # Settings of the database itself are not in a dump made without --create.
    return [str(d) for d in diff(expected, restored, ignore=(IGNORE_DATABASE,))]


def _copy_roles(source: str, target: str, *, bins: PgBinaries) -> None:
    """``source``'s roles, their attributes and memberships, made on ``target``'s server."""
    argv = [bins.path("pg_dumpall"), "--roles-only", "--no-role-passwords", "-d", source]
    script = _run(argv, dsn=source, what="pg_dumpall --roles-only")
    with connect(target) as conn:
        existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for statement in script.split(";\n"):
            text = "\n".join(
                line  # not comments, nor psql's own commands (\restrict, in recent releases)
                for line in statement.splitlines()
                if line and not line.startswith(("--", "\\"))
            )
            made = text.split()[2:3] if text.startswith("CREATE ROLE ") else []
            if not text or (made and made[0].strip('"') in existing):
                continue  # the bootstrap superuser, there already
            conn.execute(text.encode())


#: pg_restore -j in two passes: every table's data first, then what comes after it.
#: In one pass its workers build a partitioned table's triggers once that table's own
#: (empty) data is in, while a partition's COPY may still be to come: the trigger then
#: fires on the restored rows, with the restore's empty search_path, and the restore
#: fails or not by which worker wins (seen on a trigger naming its audit table bare).
PARALLEL_PASSES = (("--section=pre-data", "--section=data"), ("--section=post-data",))


# A server of its own for the proof costs its start and stop (about 0.3 s here); a
# restore on the primary costs the WAL it writes, which the replica replays: 7.7 MB
# at scale 1, 780 MB at scale 100. Below this size the primary is the cheaper place.
OWN_SERVER_FROM = 32 * 1024 * 1024


def worth_own_server(backup: Backup) -> bool:
    """Is ``backup`` large enough to prove on a server of its own (``Cluster.scratch_server``)?"""
    return backup.bytes >= OWN_SERVER_FROM


def restore_jobs() -> int:
    """Sessions for pg_restore -j: tables and indexes side by side, one per core (at most 4).

    A restore into a scratch database need not be one transaction: the copy is
    dropped whatever happens, so it can load like pg_restore loads a real database.
    """
    return max(1, min(4, os.cpu_count() or 1))


def scratch_prefix(dsn: str) -> str:
    """How the restore check names its scratch copies of ``dsn``'s database."""
    return f"{database_of(dsn)[:40]}_restore_check_"


def remove_leftovers(dsn: str) -> list[str]:
    """Drop scratch copies that a killed run of the restore check left behind; their names.

    Only call this holding the runner's advisory lock on the database: then no
    other run's restore check is in progress, and a copy nobody is connected to
    can only be a leftover.
    """
    prefix = scratch_prefix(dsn)
    pattern = "".join("\\" + c if c in "\\%_" else c for c in prefix) + "%"
    with connect(with_database(dsn, "postgres")) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s AND datname ~ '_[0-9]+$'"
            " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)",
            (pattern,),
        ).fetchall()
    names = [str(r[0]) for r in rows]
    for name in names:
        drop_database(dsn, name)
    return names
