"""The two systems a comparison loads: the retailer's today, and the plan's target.

* baseline: one primary, the legacy database in ``public``, no PgBouncer and no
  replica, at the configured (hosted default) ``max_connections``;
* target: the same legacy data migrated by the plan, behind the cluster's
  PgBouncer writer (transaction pooling) and reader (session pooling, replica).

Locally each is a cluster of its own, so each has its own ``max_connections``
and neither's leftovers (connections, WAL, cache) touch the other; the
baseline's replica and PgBouncers are stopped before any load. Given URLs
instead, the caller's servers are used as they are, after a reachability check.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict

from harness.cluster.pooling import Poolers
from harness.connections import connect
from harness.dsn import redact
from harness.errors import InfrastructureError, UsageError
from harness.load.config import LoadConfig
from harness.progress import Progress

if TYPE_CHECKING:
    from harness.cluster.local import LocalCluster

__all__ = ["LoadEnvironment", "check_loopback", "check_reachable", "local_environment"]


@dataclass(frozen=True, kw_only=True)
class LoadEnvironment:
    """Where each architecture's instances connect."""

    baseline_url: str
    target_writer_url: str
    target_reader_url: str | None
    provider: str
    #: the target's PgBouncer admin consoles (writer, reader), when the harness started them
    pgbouncer_admin: tuple[str, ...] = ()
    #: restarts the target's PgBouncers with other settings (local servers only)
    reconfigure: Callable[[Poolers], None] | None = None
    #: what a new connection pays on either side, for the report
    connections: str = "as the given URLs ask (the harness did not start these servers)"
    #: each architecture's processes on this machine, by node (local servers only)
    processes: Callable[[str], dict[str, int]] | None = None


def check_loopback(url: str, *, what: str) -> None:
    """Load goes to this machine only: a load test is not to be pointed at shared servers."""
    try:
        hosts = str(conninfo_to_dict(url).get("host") or "").split(",")
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"the {what} is not a valid connection string: {exc}") from None
    for host in hosts:
        if host in {"", "localhost"} or host.startswith("/"):
            continue  # the default or a Unix socket directory: this machine
        try:
            if ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            pass
        raise UsageError(
            f"the {what} at {redact(url)} is not on this machine (host {host!r}): load runs "
            "only against loopback addresses (127.0.0.0/8, ::1, localhost) or a Unix socket; "
            "run the comparison on the servers' own machine or a copy of them"
        )


def check_reachable(url: str, *, what: str) -> None:
    """Fail with exit 2 before any load when ``url`` does not answer ``SELECT 1``."""
    try:
        with connect(url, timeout=5) as c:
            c.execute("SELECT 1")
    except psycopg.Error as exc:
        raise InfrastructureError(
            f"the {what} at {redact(url)} is unreachable: {redact(str(exc)).strip()}; "
            "start it (or pass the right URL) before running load"
        ) from None


@contextlib.contextmanager
def local_environment(
    config: LoadConfig,
    *,
    plan_dir: Path,
    scale: int,
    pg_bin: str | None,
    progress: Progress,
    legacy: Path | None = None,
    migrate_with: Path | None = None,
) -> Iterator[LoadEnvironment]:
    """Start both systems on this machine, seed them, migrate the target; stop them after.

    ``legacy`` is the plan's own legacy database (a SQL dump or ``pg_dump`` archive,
    as ``harness gate --legacy`` takes); None: the plan's ``legacy``, or else the
    built-in one at ``scale``. ``migrate_with`` is another plan whose steps build the
    target's layout, for a plan whose own migration fails (the plan as written):
    its pooling is loaded on the layout the corrected plan builds.
    """
    from harness.cluster.local import start_local_cluster
    from harness.cluster.pooling import DEFAULT_POOLERS
    from harness.legacy import seed
    from harness.plan import load_plan
    from harness.runner import Runner

    plan = load_plan(plan_dir, legacy=legacy)
    migration = load_plan(migrate_with) if migrate_with is not None else plan
    legacy = plan.legacy
    # The target runs the PgBouncers the plan describes, as the gate does (and the
    # config's [target] numbers are the plan's: harness.load.planned).
    poolers = plan.pgbouncer or DEFAULT_POOLERS
    # Both databases get the name the plan's SQL expects (or the plan's own name).
    dbname = migration.database or migration.name
    with contextlib.ExitStack() as stack:
        progress(
            f"starting the baseline: one primary, max_connections {config.baseline.max_connections}"
        )
        baseline: LocalCluster = start_local_cluster(
            pg_bin=pg_bin,
            dbname=dbname,
            max_connections=config.baseline.max_connections,
            tls=config.network.tls,
        )
        stack.callback(baseline.stop)
        seed(baseline.endpoints.primary, scale=scale, legacy=legacy, create_roles=True)
        # The retailer has no replica and no pooler today: they must not run beside it.
        for bouncer in baseline.bouncers.values():
            bouncer.stop()
        if baseline.replica is not None:
            baseline.replica.stop()

        progress(
            f"starting the target: primary, replica and the plan's PgBouncers, "
            f"max_connections {config.target.max_connections}"
        )
        target = start_local_cluster(
            pg_bin=pg_bin,
            dbname=dbname,
            max_connections=config.target.max_connections,
            poolers=poolers,
            tls=config.network.tls,
        )
        stack.callback(target.stop)
        seed(target.endpoints.primary, scale=scale, legacy=legacy, create_roles=True)
        progress(f"migrating the target with plan {migration.name!r}")
        with Runner(migration, target.endpoints.primary) as runner:
            runner.migrate()
        target.allow_users(migration.layout.roles)
        target.wait_for_replica()
        yield LoadEnvironment(
            baseline_url=baseline.endpoints.primary,
            target_writer_url=target.endpoints.writer,
            target_reader_url=target.endpoints.reader,
            provider="local",
            pgbouncer_admin=tuple(target.pgbouncer_admin.values()),
            reconfigure=functools.partial(_reconfigure, target),
            processes=functools.partial(_processes, baseline, target),
            connections=(
                "TLS (sslmode=require) and SCRAM-SHA-256 on every TCP connection of both "
                "sides, PgBouncer's to its servers included; loopback, no network delay"
                if config.network.tls
                else "trust authentication on plain loopback TCP ([network] tls = false)"
            ),
        )


def _processes(baseline: LocalCluster, target: LocalCluster, architecture: str) -> dict[str, int]:
    """The servers and PgBouncers an architecture's load reaches, by node (read afresh:
    a PgBouncer restarted with other settings has another pid)."""
    if architecture == "baseline":
        return {"primary": baseline.primary.pid} if baseline.primary is not None else {}
    nodes = {
        name: server.pid
        for name, server in (("primary", target.primary), ("replica", target.replica))
        if server is not None
    }
    nodes.update({f"PgBouncer {role}": b.process.pid for role, b in target.bouncers.items()})
    return nodes


def _reconfigure(cluster: LocalCluster, poolers: Poolers) -> None:
    """The target's PgBouncers restarted with ``poolers`` (its servers keep running)."""
    for settings in poolers.both:
        cluster.bouncers[settings.role].reconfigure(settings)
