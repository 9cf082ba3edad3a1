"""Which PostgreSQL and PgBouncer a cluster runs, and which a team can ask for.

The docker provider's image is built from the packages of the Debian release that
carries the PostgreSQL major asked for, and that release fixes the PgBouncer too:

=========  ===========  =========  ======================================
PostgreSQL Debian       PgBouncer  notes
=========  ===========  =========  ======================================
15         bookworm     1.18       no protocol-level prepared statements
16         (none)       —          no Debian release packages it
17         trixie       1.24       ``max_prepared_statements`` (on, 200)
=========  ===========  =========  ======================================

The local provider runs whatever its binaries are and says which; every gate
records the versions its primary and PgBouncer writer report (``gate.json``
``postgresql`` and ``pgbouncer``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from harness.cluster.base import Endpoints
from harness.connections import connect
from harness.dsn import with_database
from harness.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from harness.plan import Plan

__all__ = [
    "PGBOUNCER_SETTINGS_SINCE",
    "PG_VERSIONS",
    "RELEASES",
    "Release",
    "asked_pgbouncer",
    "check_pgbouncer_settings",
    "choose",
    "choose_for",
    "local_pgbouncer_version",
    "parse_release_line",
    "parse_version",
    "release_for",
    "running_versions",
]

Version = tuple[int, ...]
ENV_IMAGE = "PGCUTOVER_DOCKER_IMAGE"  # the docker provider's image, when set (docker.py)


@dataclass(frozen=True)
class Release:
    """A PostgreSQL major, and the Debian release whose packages the image is built from."""

    pg_major: int
    suite: str | None  # None: no Debian release packages this major
    pgbouncer: Version | None  # the PgBouncer that release packages


RELEASES = {
    15: Release(15, "bookworm", (1, 18)),
    16: Release(16, None, None),
    17: Release(17, "trixie", (1, 24)),
}
PG_VERSIONS = tuple(RELEASES)
#: PgBouncer refuses a key it does not know (``unrecognized parameter``): the first
#: release that knows each setting the harness may write, when later than 1.18.
PGBOUNCER_SETTINGS_SINCE: dict[str, Version] = {"max_prepared_statements": (1, 21)}


def release_for(pg_major: int) -> Release:
    """The release to build ``pg_major``'s image from; a major no Debian release carries
    is refused before any server starts."""
    release = RELEASES.get(pg_major)
    buildable = ", ".join(f"{r.pg_major} ({r.suite})" for r in RELEASES.values() if r.suite)
    if release is None or release.suite is None:
        raise UsageError(
            f"PostgreSQL {pg_major} has no image here: no Debian release packages it, and the "
            f"image is built from Debian's packages (buildable: {buildable}); choose one of "
            "those, or pass --image with an image of your own that has PostgreSQL "
            f"{pg_major} and PgBouncer"
        )
    return release


def parse_version(text: str) -> Version | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def parse_release_line(text: str) -> tuple[int, int] | None:
    """``"1.24"`` as ``(1, 24)``: a release line, as a user names one; None for anything else."""
    m = re.fullmatch(r"(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else None


def dotted(version: Version) -> str:
    return ".".join(map(str, version))


def local_pgbouncer_version() -> Version | None:
    """The version of the PgBouncer the local provider runs; None where there is none."""
    from harness.cluster.binaries import find_pgbouncer

    try:
        tool = find_pgbouncer()
    except HarnessError:
        return None
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    return parse_version(done.stdout.splitlines()[0] if done.stdout else "")


def check_pgbouncer_settings(keys: set[str], *, version: Version | None, where: str) -> None:
    """Refuse, before any server starts, a setting ``version`` of PgBouncer would refuse."""
    if version is None:
        return
    carried = {r.pgbouncer: r.pg_major for r in RELEASES.values() if r.pgbouncer is not None}
    newest = max(carried)
    for key in sorted(keys):
        since = PGBOUNCER_SETTINGS_SINCE.get(key)
        if since is not None and version < since:
            raise UsageError(
                f"{where} sets {key}, which PgBouncer {dotted(version)} does not know (it came "
                f"in PgBouncer {dotted(since)}, and PgBouncer refuses keys it does not know); "
                f"run a PgBouncer {dotted(since)} or later (--provider docker --pgbouncer "
                f"{dotted(newest)} with any --pg-version; --pg-version {carried[newest]} carries "
                f"it too), or leave {key} out"
            )


def running_versions(endpoints: Endpoints) -> dict[str, str]:
    """What the servers and the PgBouncer writer say they are; "" where one does not answer."""
    found: dict[str, str] = {}
    try:
        with connect(endpoints.primary, timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        found["postgresql"] = str(row[0]) if row else ""
    except psycopg.Error:
        found["postgresql"] = ""
    found["pgbouncer"] = ""
    if endpoints.writer != endpoints.primary:
        try:
            with connect(with_database(endpoints.writer, "pgbouncer"), timeout=5) as conn:
                row = conn.execute("SHOW VERSION").fetchone()
            found["pgbouncer"] = str(row[0]).removeprefix("PgBouncer ") if row else ""
        except psycopg.Error:
            pass
    return found


def choose(
    *,
    provider: str,
    pg_version: int | None,
    image: str | None,
    pg_bin: str | None,
    pgbouncer_keys: set[str],
    where: str,
    pgbouncer: Version | None = None,
) -> str | None:
    """The docker provider's image for ``pg_version`` (None: the one given or the default),
    after refusing what the chosen PostgreSQL or PgBouncer cannot run, before any server
    starts: a major with no image, a local provider of another major, a PgBouncer setting
    the chosen PgBouncer does not know. ``pgbouncer``: the docker provider's PgBouncer,
    when it is not the servers' image's (:mod:`harness.cluster.pgbouncer_builds`)."""
    if provider == "docker":
        if image is not None or (pg_version is None and os.environ.get(ENV_IMAGE)):
            # Someone else's image: its PgBouncer is theirs to know, unless ours runs it.
            check_pgbouncer_settings(pgbouncer_keys, version=pgbouncer, where=where)
            return image
        from harness.cluster.docker_image import image_for

        release = release_for(pg_version or 15)
        version = pgbouncer or release.pgbouncer
        check_pgbouncer_settings(pgbouncer_keys, version=version, where=where)
        # Left unsaid, the provider's default (the same image) is chosen where it starts.
        return image_for(release.pg_major) if pg_version is not None else None
    if provider == "local":
        if pg_version is not None:
            from harness.cluster.binaries import find_binaries

            binaries = find_binaries(pg_bin)
            found = parse_version(binaries.version())
            if found is None or found[0] != pg_version:
                raise UsageError(
                    f"PostgreSQL {pg_version} was asked for, and the local provider's binaries "
                    f"in {binaries.bindir} are {binaries.version()}; give --pg-bin a "
                    f"PostgreSQL {pg_version} bin directory, or --provider docker"
                )
        check_pgbouncer_settings(pgbouncer_keys, version=local_pgbouncer_version(), where=where)
    return None


def choose_for(args: argparse.Namespace, plan: Plan | None) -> str | None:
    """:func:`choose` for a command's options (``--pg-version`` over ``[cluster] pg_version``)."""
    poolers = plan.pgbouncer if plan is not None else None
    return choose(
        provider=args.provider,
        pg_version=getattr(args, "pg_version", None) or (plan.pg_version if plan else None),
        image=getattr(args, "image", None),
        pg_bin=getattr(args, "pg_bin", None),
        pgbouncer_keys=set().union(*(p.pgbouncer_keys for p in poolers.both)) if poolers else set(),
        where=f"{plan.directory / 'plan.toml'}: [pgbouncer]" if plan is not None else "[pgbouncer]",
        pgbouncer=asked_pgbouncer(args, plan),
    )


def asked_pgbouncer(args: argparse.Namespace, plan: Plan | None) -> Version | None:
    """The PgBouncer asked for: ``--pgbouncer`` over ``[cluster] pgbouncer``."""
    given: Version | None = getattr(args, "pgbouncer", None)
    return given or (plan.pgbouncer_version if plan is not None else None)
