"""Clusters the harness runs against: a primary, a streaming replica, PgBouncer in front.

``start_cluster(provider=...)`` is the one entry point; the providers are
``local`` (this machine's binaries, the default), ``docker`` (testcontainers)
and ``external`` (``DATABASE_URL`` / ``DATABASE_READONLY_URL``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.cluster.base import Cluster, Endpoints
from harness.cluster.pooling import Poolers
from harness.errors import UsageError
from harness.progress import Progress, quiet

if TYPE_CHECKING:
    from harness.cluster.clone import CloneSource

__all__ = ["PROVIDERS", "Cluster", "Endpoints", "Poolers", "start_cluster"]

PROVIDERS = ("local", "docker", "external")


def start_cluster(
    provider: str = "local",
    *,
    pg_bin: str | None = None,
    dbname: str = "app",
    progress: Progress = quiet,
    image: str | None = None,
    network: str | None = None,
    pgbouncer_image: str | None = None,
    poolers: Poolers | None = None,
    clone: CloneSource | None = None,
) -> Cluster:
    """Start a cluster; ``image``, ``network`` and ``pgbouncer_image`` (the image its
    PgBouncers run, None: ``image``) are the docker provider's choices.

    ``poolers`` configures the PgBouncers a provider starts (a plan's ``[pgbouncer]``;
    None: the defaults). The external provider starts none, so it has nothing to
    apply them to: its servers' poolers are their operator's. ``clone``: the local
    provider's primary is a copy of that server, and the cluster's database its database.
    """
    if clone is not None:
        from harness.cluster.clone import refuse_provider

        refuse_provider(provider)
        dbname = clone.database
    if provider == "local":
        from harness.cluster.local import start_local_cluster

        return start_local_cluster(
            pg_bin=pg_bin, dbname=dbname, progress=progress, poolers=poolers, clone=clone
        )
    if provider == "docker":
        from harness.cluster.docker import start_docker_cluster

        return start_docker_cluster(
            dbname=dbname,
            progress=progress,
            image=image,
            pgbouncer_image=pgbouncer_image,
            network=network,
            poolers=poolers,
        )
    if provider == "external":
        from harness.cluster.external import from_env

        if poolers is not None:
            progress(
                "the plan's [pgbouncer] settings are not applied: the external provider "
                "starts no PgBouncer (configure the servers' own poolers to match)"
            )
        return from_env()
    raise UsageError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
