"""Which PgBouncer a cluster runs: ``--pgbouncer MAJOR.MINOR`` or ``[cluster] pgbouncer``.

PgBouncer's version decides what a preparing driver meets behind a transaction pool
(protocol-level prepared statements from 1.21, on by default from 1.24), so a team
gates with the PgBouncer it runs, whatever PostgreSQL it runs. The docker provider
starts its PgBouncers from the image of the Debian release that packages the one
asked for (1.18: bookworm, 1.24: trixie; :data:`harness.cluster.versions.RELEASES`),
beside servers of any major; the local provider has one PgBouncer, this machine's,
and runs only that. Everything here is refused before any server starts.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.cluster.versions import (
    RELEASES,
    Release,
    Version,
    asked_pgbouncer,
    choose_for,
    dotted,
    local_pgbouncer_version,
    parse_release_line,
)
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.plan import Plan

__all__ = ["choose_images", "choose_pgbouncer", "pgbouncer_option", "release_with_pgbouncer"]


def pgbouncer_option(text: str) -> Version:
    """``--pgbouncer``'s value: a release line, ``1.24``; a build within it is Debian's choice."""
    version = parse_release_line(text.strip())
    if version is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a PgBouncer version; give MAJOR.MINOR, such as 1.24"
        )
    return version


def _builds() -> str:
    return ", ".join(
        f"{dotted(r.pgbouncer)} ({r.suite}, with PostgreSQL {r.pg_major})"
        for r in RELEASES.values()
        if r.pgbouncer is not None
    )


def release_with_pgbouncer(version: Version) -> Release:
    """The release whose image carries PgBouncer ``version`` (compared by MAJOR.MINOR)."""
    for release in RELEASES.values():
        if release.pgbouncer is not None and release.pgbouncer[:2] == version[:2]:
            return release
    raise UsageError(
        f"PgBouncer {dotted(version)} is in no image here: the images are built from Debian's "
        f"packages, which carry PgBouncer {_builds()}; choose one of those with --pgbouncer, "
        f"or install PgBouncer {dotted(version)} here and gate with --provider local"
    )


def choose_pgbouncer(*, provider: str, pgbouncer: Version | None) -> str | None:
    """The image the docker provider's PgBouncers run (None: the servers' image), after
    refusing a PgBouncer the provider cannot run."""
    if pgbouncer is None:
        return None
    if provider == "docker":
        from harness.cluster.docker_image import image_for

        return image_for(release_with_pgbouncer(pgbouncer).pg_major)
    if provider == "local":
        from harness.cluster.binaries import find_pgbouncer

        found = local_pgbouncer_version()
        if found is None or found[:2] != pgbouncer[:2]:
            has = f"is {dotted(found)}" if found is not None else "does not say its version"
            fixes = [f"install PgBouncer {dotted(pgbouncer)} here (PGCUTOVER_PGBOUNCER=its path)"]
            try:
                release_with_pgbouncer(pgbouncer)
                fixes.insert(0, f"run --provider docker --pgbouncer {dotted(pgbouncer)}")
            except UsageError:
                pass
            raise UsageError(
                f"PgBouncer {dotted(pgbouncer)} was asked for, and the local provider's "
                f"PgBouncer ({find_pgbouncer()}) {has}; {', or '.join(fixes)}, or leave "
                "--pgbouncer out"
            )
        return None
    raise UsageError(
        f"--pgbouncer chooses the PgBouncer a provider starts, and the {provider} provider "
        "starts none (its servers' poolers are their operator's); leave --pgbouncer out, or "
        "use --provider docker"
    )


def choose_images(args: argparse.Namespace, plan: Plan | None) -> tuple[str | None, str | None]:
    """(the servers' image, the PgBouncers' image) for a command's options, or the refusal
    of what the chosen PostgreSQL or PgBouncer cannot run (see :func:`choose_for`)."""
    bouncer = choose_pgbouncer(provider=args.provider, pgbouncer=asked_pgbouncer(args, plan))
    return choose_for(args, plan), bouncer
