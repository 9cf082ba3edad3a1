"""Finding the PostgreSQL and PgBouncer programs on this machine.

Debian installs the server programs under ``/usr/lib/postgresql/<major>/bin``,
off PATH; Homebrew puts them under its prefix. ``pg_config --bindir`` is the
most reliable answer when the client and server come from the same packages.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InfrastructureError, UsageError

__all__ = ["PgBinaries", "client_binaries", "find_binaries", "find_pgbouncer", "use_clients"]

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres", "pg_basebackup")
CLIENT_PROGRAMS = ("pg_dump", "pg_restore", "psql")
_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/opt/homebrew/bin",
    "/usr/local/pgsql/bin",
)


@dataclass(frozen=True)
class PgBinaries:
    """One directory that holds every PostgreSQL program the harness runs."""

    bindir: Path

    def path(self, program: str) -> str:
        return str(self.bindir / program)

    def version(self) -> str:
        out = subprocess.run(
            [self.path("postgres"), "--version"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()


def _complete(bindir: Path, programs: tuple[str, ...]) -> bool:
    return all(os.access(bindir / p, os.X_OK) for p in programs)


def _candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            found.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(os.path.realpath(initdb)).parent)
    for pattern in _SEARCH_GLOBS:
        # Newest major version first: "/usr/lib/postgresql/16/bin" before ".../15/bin".
        found.extend(Path(p) for p in sorted(glob.glob(pattern), reverse=True))
    return found


def find_binaries(pg_bin: str | os.PathLike[str] | None = None) -> PgBinaries:
    """The directory holding initdb, pg_ctl, postgres, pg_basebackup, pg_dump, psql."""
    needed = SERVER_PROGRAMS + CLIENT_PROGRAMS
    if pg_bin is not None:
        bindir = Path(pg_bin)
        missing = [p for p in needed if not os.access(bindir / p, os.X_OK)]
        if missing:
            raise UsageError(
                f"--pg-bin {bindir} is not usable: it lacks {', '.join(missing)}; "
                "point it at the directory that holds initdb and pg_ctl "
                "(`pg_config --bindir` prints it)"
            )
        return PgBinaries(bindir)
    candidates = _candidates()
    for bindir in candidates:
        if _complete(bindir, needed):
            return PgBinaries(bindir)
    looked = (
        ", ".join(dict.fromkeys(str(c) for c in candidates)) or "nowhere (no pg_config on PATH)"
    )
    raise InfrastructureError(
        "PostgreSQL server programs not found (looked for initdb, pg_ctl, postgres, "
        f"pg_basebackup, pg_dump, psql in: {looked}); install them "
        "(Debian: apt-get install postgresql; macOS: brew install postgresql@15) "
        "or pass --pg-bin DIR"
    )


# Client programs that replace this machine's while a cluster of a newer major runs
# (harness.cluster.client_tools); empty: this machine's own.
_CLIENTS: list[Path] = []


def use_clients(bindir: Path | None) -> None:
    """Run pg_dump, pg_restore and psql from ``bindir`` (None: this machine's again)."""
    _CLIENTS.clear()
    if bindir is not None:
        _CLIENTS.append(bindir)


def client_binaries(pg_bin: str | os.PathLike[str] | None = None) -> PgBinaries:
    """Where pg_dump, pg_restore and psql are: the running cluster's, else :func:`find_binaries`."""
    if _CLIENTS and pg_bin is None:
        return PgBinaries(_CLIENTS[0])
    return find_binaries(pg_bin)


def find_pgbouncer() -> str:
    chosen = os.environ.get("PGCUTOVER_PGBOUNCER")
    if chosen:
        if os.access(chosen, os.X_OK):
            return chosen
        raise UsageError(
            f"PGCUTOVER_PGBOUNCER={chosen} is not an executable file; "
            "point it at the pgbouncer program or unset it"
        )
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer", "/usr/local/bin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise InfrastructureError(
        "pgbouncer not found on PATH or in /usr/sbin; install it "
        "(Debian: apt-get install pgbouncer; macOS: brew install pgbouncer)"
    )
