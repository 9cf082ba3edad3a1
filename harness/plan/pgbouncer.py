"""``[pgbouncer]`` in plan.toml: the poolers the plan's application runs behind.

A migration that is safe behind one pooler may not be behind another: a session
pool keeps a server connection (and its ``search_path``) for as long as the
client stays, a transaction pool hands it on after every transaction, and a
pool that is too small makes clients queue behind a step's locks. So the plan
says what production runs, and the gate starts its PgBouncers with that::

    [pgbouncer.writer]               # on the primary; DATABASE_URL
    pool_mode = "transaction"        # session, transaction or statement
    max_client_conn = 100
    default_pool_size = 25           # per (database, user) pair
    reserve_pool_size = 5
    reserve_pool_timeout = 5         # seconds, as every time here
    server_lifetime = 3600
    server_idle_timeout = 600
    server_login_retry = 1
    max_prepared_statements = 200    # PgBouncer 1.21+: protocol-level prepared statements
                                     # in transaction pooling (0: off); left out: not written,
                                     # the PgBouncer's own default (200 from 1.24, 0 before)

    [pgbouncer.reader]               # on the replica; DATABASE_READONLY_URL
    pool_mode = "session"
    max_client_conn = 200

Each key left out keeps the engine's default (:data:`~harness.cluster.pooling.WRITER`
and :data:`~harness.cluster.pooling.READER`); the servers' ``max_connections`` is
sized from the result (:func:`~harness.cluster.pooling.max_connections_for`).
"""

from __future__ import annotations

from pathlib import Path

from harness.cluster.pooling import (
    DEFAULT_POOLERS,
    POOL_MODES,
    Poolers,
    PoolSettings,
    max_connections_for,
)
from harness.errors import PlanError
from harness.plan.workload import Workload

__all__ = ["MAX_SERVER_CONNECTIONS", "parse_pgbouncer", "refuse_statement_pooling"]

# The most max_connections a cluster the harness starts is given: each connection
# slot costs shared memory and a semaphore whether used or not, and the harness's
# servers share a machine with their tests.
MAX_SERVER_CONNECTIONS = 2000
# Whole numbers, each with its least sensible value: a pool of no connections, or a
# pooler admitting no clients, serves nothing; a zero time is PgBouncer's "off".
_MINIMUM = {
    "max_client_conn": 1,
    "default_pool_size": 1,
    "reserve_pool_size": 0,
    "reserve_pool_timeout": 0,
    "server_lifetime": 0,
    "server_idle_timeout": 0,
    "server_login_retry": 0,
}
# Written only when given: a PgBouncer before 1.21 refuses it (harness/cluster/versions.py).
_OPTIONAL = {"max_prepared_statements": 0}
_KEYS = ("pool_mode", *_MINIMUM, *_OPTIONAL)


def _pooler(raw: object, *, default: PoolSettings, where: str) -> PoolSettings:
    if not isinstance(raw, dict):
        raise PlanError(f"{where} must be a table of PgBouncer settings, got {raw!r}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise PlanError(
            f"{where} has unknown key(s) {', '.join(unknown)}; the known ones are "
            f"{', '.join(_KEYS)}"
        )
    mode = raw.get("pool_mode", default.pool_mode)
    if mode not in POOL_MODES:
        raise PlanError(
            f"{where} pool_mode = {mode!r}; PgBouncer's pool modes are {', '.join(POOL_MODES)}"
        )
    numbers: dict[str, int] = {}
    for key, least in _MINIMUM.items():
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            unit = " (seconds)" if "timeout" in key or "lifetime" in key or "retry" in key else ""
            raise PlanError(
                f"{where} {key} = {value!r}; it must be a whole number{unit} of at least {least}"
            )
        numbers[key] = value
    optional: dict[str, int] = {}
    for key, least in _OPTIONAL.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise PlanError(f"{where} {key} = {value!r}; it must be a whole number of at least "
                            f"{least} (0 turns it off)")  # fmt: skip
        optional[key] = value
    return PoolSettings(
        role=default.role,
        pool_mode=str(mode),
        max_client_conn=numbers["max_client_conn"],
        default_pool_size=numbers["default_pool_size"],
        reserve_pool_size=numbers["reserve_pool_size"],
        reserve_pool_timeout=numbers["reserve_pool_timeout"],
        server_lifetime=numbers["server_lifetime"],
        server_idle_timeout=numbers["server_idle_timeout"],
        server_login_retry=numbers["server_login_retry"],
        max_prepared_statements=optional.get("max_prepared_statements"),
    )


def parse_pgbouncer(raw: object, *, toml_path: Path) -> Poolers | None:
    """The plan's poolers, each key it leaves out the default; None for no section at all."""
    if raw is None:
        return None
    defaults = {p.role: p for p in DEFAULT_POOLERS.both}
    if not isinstance(raw, dict):
        raise PlanError(f"{toml_path}: [pgbouncer] must be a table with [pgbouncer.writer] "
                        "and/or [pgbouncer.reader]")  # fmt: skip
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise PlanError(
            f"{toml_path}: [pgbouncer] has unknown pooler(s) {', '.join(unknown)}; the "
            "gate runs two, [pgbouncer.writer] (on the primary) and [pgbouncer.reader] "
            "(on the replica), with the settings under each"
        )
    chosen = {
        role: _pooler(raw[role], default=default, where=f"{toml_path}: [pgbouncer.{role}]")
        if role in raw
        else default
        for role, default in defaults.items()
    }
    poolers = Poolers(writer=chosen["writer"], reader=chosen["reader"])
    needed = max_connections_for(poolers)
    if needed > MAX_SERVER_CONNECTIONS:
        raise PlanError(
            f"{toml_path}: [pgbouncer] lets the poolers open up to {needed} server "
            f"connections (with the harness's own), above the {MAX_SERVER_CONNECTIONS} the "
            "gate's servers are started with at most; lower max_client_conn or "
            "default_pool_size + reserve_pool_size (a pool is per database and user)"
        )
    return poolers


def refuse_statement_pooling(
    poolers: Poolers | None, workload: Workload | None, *, toml_path: Path
) -> None:
    """Statement pooling refuses transaction blocks, and a query of several statements is one.

    Caught when the plan is read: the gate's traffic could not even start, and the
    application's own transactions would fail the same way behind this pooler.
    """
    if poolers is None or workload is None:
        return
    for pool in poolers.both:
        blocks = [q.name for q in workload.queries if q.path == pool.role and len(q.sql) > 1]
        if pool.pool_mode == "statement" and blocks:
            raise PlanError(
                f'{toml_path}: [pgbouncer.{pool.role}] pool_mode = "statement" refuses '
                "transaction blocks (PgBouncer: transaction blocks not allowed in statement "
                f"pooling mode), and {', '.join(blocks)} of [workload] run several statements "
                'as one transaction through it; use pool_mode = "transaction"'
            )
