"""Room for the built-in database at a scale, checked before any server starts.

At scale 1000 the legacy database is about 8 GB, and a gate holds it several
times over: the primary, the streaming replica, the backup and the scratch copy
the backup is restored into, plus the WAL of the load. Finding that out when the
disk fills twenty minutes into the load leaves a half-written cluster behind; a
sum done first costs nothing and names the fix. A gate of a clone of the user's
server (``--clone-from``) is summed the same way from the source's own sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.cluster.local import default_base_dir
from harness.errors import UsageError

__all__ = [
    "MAX_SCALE",
    "check_clone_room",
    "check_gate_room",
    "check_room",
    "clone_room_needed",
    "room_needed",
]

#: About 360 M rows and 80 GB: past this the built-in database is not a test any
#: machine here can hold; a larger database is a dump of the team's own (--legacy).
MAX_SCALE = 10_000
# Measured at scale 100 (PostgreSQL 15): 827 MB of tables and indexes, and the gate's
# backup (an uncompressed directory archive) 447 MB. The gate's peak (every file under
# the cluster's and the backup's directories) was 7.7 GB at scale 100 and 56.7 GB at
# scale 1000, where an earlier sum had reckoned 4.8 and 31 GB: each server keeps WAL up
# to max_wal_size (2 GB) before its checkpoints recycle it, and past that a restore of
# the whole database writes WAL faster than they do; the restored copy is replicated
# too; and the checks' and the plan's joins and sorts spill to temporary files.
_DATABASE_PER_SCALE = 8_300_000
_BACKUP_PER_SCALE = 4_500_000
#: WAL a server keeps: up to max_wal_size at 20 MB per unit of scale, then 10 MB more
_WAL_KEPT_PER_SCALE = 20_000_000
_WAL_KEPT_CAP = 2_100_000_000
_WAL_PER_SCALE = 10_000_000
_CLUSTER = 200_000_000  # two initdb'd servers, logs, PgBouncer


def _room(*, cluster: int, database: int, backup: int, wal_scale: float) -> int:
    """The primary and the replica each hold the whole cluster, the backup's restore of
    the gated database and their WAL; then the backup itself, and temporary files of
    half the gated database. ``wal_scale``: the gated database in units of scale."""
    wal = min(_WAL_KEPT_PER_SCALE * wal_scale, _WAL_KEPT_CAP) + _WAL_PER_SCALE * wal_scale
    return int(_CLUSTER + 2 * (cluster + database + wal) + backup + database // 2)


def room_needed(*, scale: int) -> int:
    """Bytes a gate at ``scale`` writes at its peak: four copies, the backup, the WAL."""
    database = _DATABASE_PER_SCALE * scale
    return _room(
        cluster=database,
        database=database,
        backup=_BACKUP_PER_SCALE * scale,
        wal_scale=scale,
    )


def clone_room_needed(*, cluster_bytes: int, database_bytes: int) -> int:
    """Bytes a gate of a clone writes at its peak: a physical copy holds every database of
    the source, twice (primary and replica); the built-in database's ratios of backup and
    WAL to database size stand in for those of the one gated."""
    return _room(
        cluster=cluster_bytes,
        database=database_bytes,
        backup=database_bytes * _BACKUP_PER_SCALE // _DATABASE_PER_SCALE,
        wal_scale=database_bytes / _DATABASE_PER_SCALE,
    )


def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def check_room(*, scale: int, directory: Path) -> None:
    """Refuse a scale above :data:`MAX_SCALE`, or one ``directory`` has no room for."""
    if scale > MAX_SCALE:
        raise UsageError(
            f"scale {scale:,} is above the largest the built-in database goes to "
            f"({MAX_SCALE:,}, about {MAX_SCALE * _DATABASE_PER_SCALE / 1e9:,.0f} GB); "
            "use a smaller --scale, or gate a dump of your own database with --legacy"
        )
    free = free_bytes(directory)
    needed = room_needed(scale=scale)
    if needed > free:
        raise UsageError(
            f"scale {scale:,} needs about {needed / 1e9:.1f} GB in {directory} (primary, "
            f"replica, backup and its restore, WAL, temporary files) and {free / 1e9:.1f} GB "
            "are free; set PGCUTOVER_TMPDIR to a directory on a disk with room, free space "
            "there, or use a smaller --scale"
        )


def check_clone_room(*, source: str, cluster_bytes: int, database_bytes: int) -> None:
    """Refuse a clone of ``source`` that the cluster's directory has no room for."""
    directory = Path(default_base_dir())
    free = free_bytes(directory)
    needed = clone_room_needed(cluster_bytes=cluster_bytes, database_bytes=database_bytes)
    if needed > free:
        raise UsageError(
            f"a gate of a clone of {source} ({cluster_bytes / 1e9:.1f} GB of databases) needs "
            f"about {needed / 1e9:.1f} GB in {directory} (the clone, its replica, the gated "
            f"database's backup and its restore, WAL, temporary files) and {free / 1e9:.1f} GB "
            "are free; set PGCUTOVER_TMPDIR to a directory on a disk with room, or free "
            "space there"
        )


def check_gate_room(*, provider: str, scale: int, legacy: Path | None) -> None:
    """:func:`check_room` where a gate's local cluster will live, for the built-in database.

    A dump's size on disk says little about its database's (compression, indexes),
    and other providers' servers keep their data elsewhere: those are not guessed at.
    """
    if provider == "local" and legacy is None:
        check_room(scale=scale, directory=Path(default_base_dir()))
