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
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from harness.connections import connect
from harness.dsn import redact
from harness.errors import InfrastructureError, UsageError
from harness.load.config import LoadConfig
from harness.progress import Progress

__all__ = ["LoadEnvironment", "check_loopback", "check_reachable", "local_environment"]


@dataclass(frozen=True, kw_only=True)
class LoadEnvironment:
    """Where each architecture's instances connect."""

    baseline_url: str
    target_writer_url: str
    target_reader_url: str | None
    #: the plan's PgBouncer admin consoles (writer, reader), when the harness started them
    provider: str


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
) -> Iterator[LoadEnvironment]:
    """Start both systems on this machine, seed them, migrate the target; stop them after.

    ``legacy`` is the plan's own legacy database (a SQL dump or ``pg_dump`` archive,
    as ``harness gate --legacy`` takes); None: the plan's ``legacy``, or else the
    built-in one at ``scale``.
    """
    from harness.cluster.local import LocalCluster, start_local_cluster
    from harness.cluster.pooling import DEFAULT_POOLERS
    from harness.legacy import seed
    from harness.plan import load_plan
    from harness.runner import Runner

    plan = load_plan(plan_dir, legacy=legacy)
    legacy = plan.legacy
    # The target runs the PgBouncers the plan describes, as the gate does.
    poolers = plan.pgbouncer or DEFAULT_POOLERS
    _check_plan_numbers(config, writer=poolers.writer, reader=poolers.reader)
    # Both databases get the name the plan's SQL expects (or the plan's own name).
    dbname = plan.database or plan.name
    with contextlib.ExitStack() as stack:
        progress(
            f"starting the baseline: one primary, max_connections {config.baseline.max_connections}"
        )
        baseline: LocalCluster = start_local_cluster(
            pg_bin=pg_bin, dbname=dbname, max_connections=config.baseline.max_connections
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
        )
        stack.callback(target.stop)
        seed(target.endpoints.primary, scale=scale, legacy=legacy, create_roles=True)
        progress(f"migrating the target with plan {plan.name!r}")
        with Runner(plan, target.endpoints.primary) as runner:
            runner.migrate()
        target.allow_users(plan.layout.roles)
        target.wait_for_replica()
        yield LoadEnvironment(
            baseline_url=baseline.endpoints.primary,
            target_writer_url=target.endpoints.writer,
            target_reader_url=target.endpoints.reader,
            provider="local",
        )


def _check_plan_numbers(config: LoadConfig, *, writer: object, reader: object) -> None:
    """The config's PgBouncer numbers are the ones the local cluster really runs."""
    t = config.target
    wanted = {
        "writer_max_client_conn": (t.writer_max_client_conn, writer, "max_client_conn"),
        "writer_default_pool_size": (t.writer_default_pool_size, writer, "default_pool_size"),
        "writer_reserve_pool_size": (t.writer_reserve_pool_size, writer, "reserve_pool_size"),
        "reader_max_client_conn": (t.reader_max_client_conn, reader, "max_client_conn"),
        "reader_default_pool_size": (t.reader_default_pool_size, reader, "default_pool_size"),
        "reader_reserve_pool_size": (t.reader_reserve_pool_size, reader, "reserve_pool_size"),
    }
    wrong = [
        f"{key} = {value} (the cluster runs {getattr(settings, attr)})"
        for key, (value, settings, attr) in wanted.items()
        if getattr(settings, attr) != value
    ]
    if wrong:
        raise UsageError(
            f"{config.source}: [target] {'; '.join(wrong)}: the local cluster runs the plan's "
            "[pgbouncer] settings; put its numbers here, or compare against your own servers "
            "with --baseline-url and --target-url"
        )
