"""pg_dump and pg_restore for a server newer than this machine's: run in the server's image.

pg_dump refuses a server of a later major (``aborting because of server version
mismatch``), and pg_restore cannot read the archive a later pg_dump writes. The
docker provider's image carries the client programs of its own major, so where
this machine's are older (PostgreSQL 15 on bookworm against 17), each runs in a
throwaway container of that image on the host's network, with the files it reads
and writes (the system's temporary directory, the working directory) mounted at
the same paths, as this machine's user.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.cluster import binaries
from harness.errors import HarnessError

__all__ = ["clients_for"]

_WRAPPED = ("pg_dump", "pg_restore", "psql")


def _host_major() -> int | None:
    try:
        text = binaries.find_binaries().version()
    except (HarnessError, OSError):
        return None
    digits = [w for w in text.split() if w[:1].isdigit()]
    return int(digits[0].split(".")[0]) if digits else None


def _wrapper(image: str, program: str) -> str:
    mounts = dict.fromkeys([tempfile.gettempdir(), "/tmp", os.getcwd()])
    volumes = " ".join(f"-v {shlex.quote(m)}:{shlex.quote(m)}" for m in mounts)
    return f"""#!/bin/sh
# {program} of the cluster's image: this machine's is of an older PostgreSQL major.
set -e
envs=""
for name in $(env | sed -n 's/^\\(PG[A-Z_]*\\)=.*/\\1/p'); do envs="$envs -e $name"; done
exec docker run --rm -i --network host --user "$(id -u):$(id -g)" {volumes} \\
    -w {shlex.quote(os.getcwd())} $envs {shlex.quote(image)} {program} "$@"
"""


def clients_for(*, image: str, server_major: int) -> Callable[[], None]:
    """Make the client programs the harness runs those of ``image`` when this machine's
    are older than ``server_major``; what undoes it (to call when the cluster stops)."""
    host = _host_major()
    if host is not None and host >= server_major:
        return lambda: None
    scratch = tempfile.TemporaryDirectory(prefix="pgcutover-clients-")
    bindir = Path(scratch.name)
    for program in _WRAPPED:
        path = bindir / program
        path.write_text(_wrapper(image, program))
        path.chmod(0o755)
    binaries.use_clients(bindir)

    def undo() -> None:
        binaries.use_clients(None)
        scratch.cleanup()

    return undo
