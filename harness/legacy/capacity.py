"""Room for the built-in database at a scale, checked before any server starts.

At scale 1000 the legacy database is about 8 GB, and a gate holds it several
times over: the primary, the streaming replica, the backup and the scratch copy
the backup is restored into, plus the WAL of the load. Finding that out when the
disk fills twenty minutes into the load leaves a half-written cluster behind; a
sum done first costs nothing and names the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.cluster.local import default_base_dir
from harness.errors import UsageError

__all__ = ["MAX_SCALE", "check_gate_room", "check_room", "room_needed"]

#: About 360 M rows and 80 GB: past this the built-in database is not a test any
#: machine here can hold; a larger database is a dump of the team's own (--legacy).
MAX_SCALE = 10_000
# Measured at scale 100 (PostgreSQL 15): 827 MB of tables and indexes, a 154 MB
# pg_dump -Fc archive, about 10 MB of WAL per unit of scale until a checkpoint.
_DATABASE_PER_SCALE = 8_300_000
_BACKUP_PER_SCALE = 1_600_000
_WAL_PER_SCALE = 10_000_000
_WAL_CAP = 2_300_000_000  # max_wal_size 2GB plus wal_keep_size, per server
_CLUSTER = 200_000_000  # two initdb'd servers, logs, PgBouncer


def room_needed(*, scale: int) -> int:
    """Bytes a gate at ``scale`` writes at its peak: three copies, the backup, the WAL."""
    copies = 3 * _DATABASE_PER_SCALE * scale  # primary, replica, the backup's restore
    wal = 2 * min(_WAL_PER_SCALE * scale, _WAL_CAP)  # primary and replica
    return _CLUSTER + copies + _BACKUP_PER_SCALE * scale + wal


def check_room(*, scale: int, directory: Path) -> None:
    """Refuse a scale above :data:`MAX_SCALE`, or one ``directory`` has no room for."""
    if scale > MAX_SCALE:
        raise UsageError(
            f"scale {scale:,} is above the largest the built-in database goes to "
            f"({MAX_SCALE:,}, about {MAX_SCALE * _DATABASE_PER_SCALE / 1e9:,.0f} GB); "
            "use a smaller --scale, or gate a dump of your own database with --legacy"
        )
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    needed = room_needed(scale=scale)
    if needed > free:
        raise UsageError(
            f"scale {scale:,} needs about {needed / 1e9:.1f} GB in {directory} (primary, "
            f"replica, backup and its restore, WAL) and {free / 1e9:.1f} GB are free; "
            "set PGCUTOVER_TMPDIR to a directory on a disk with room, free space there, "
            "or use a smaller --scale"
        )


def check_gate_room(*, provider: str, scale: int, legacy: Path | None) -> None:
    """:func:`check_room` where a gate's local cluster will live, for the built-in database.

    A dump's size on disk says little about its database's (compression, indexes),
    and other providers' servers keep their data elsewhere: those are not guessed at.
    """
    if provider == "local" and legacy is None:
        check_room(scale=scale, directory=Path(default_base_dir()))
