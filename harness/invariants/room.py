"""Room for the application's connections after the migration.

A step can leave every grant in place and still lock the application out under load:
``ALTER ROLE app CONNECTION LIMIT 5`` lets the harness's few sessions in and refuses
the sixth server connection a PgBouncer opens ("too many connections for role");
``ALTER DATABASE … CONNECTION LIMIT`` or ``ALLOW_CONNECTIONS false`` does the same
for every role; ``VALID UNTIL`` in the past refuses every password login, which the
harness's own servers, trusting loopback, never ask for.

So, for what the migration changed (the baseline says what was there before, and
that is not the plan's doing), each role the application logs in as must have room
for the server connections its poolers open as it on one server — a PgBouncer's
``default_pool_size + reserve_pool_size`` per (database, role) pair, the larger of
the plan's two, since reads fall back to the writer — and the database for all of
those roles together; no password may have expired.
"""

from __future__ import annotations

import datetime as dt

from harness.catalog import Fingerprint
from harness.cluster.pooling import DEFAULT_POOLERS
from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.default_workload import workload_of

__all__ = ["check_connection_room"]

NAME = "connections.room"


def _pool_per_role(plan: Plan) -> tuple[int, str]:
    """The most server connections one of the plan's PgBouncers opens as one role, and which."""
    poolers = plan.pgbouncer or DEFAULT_POOLERS
    widest = max(poolers.both, key=lambda p: p.default_pool_size + p.reserve_pool_size)
    return widest.default_pool_size + widest.reserve_pool_size, f"PgBouncer {widest.role}"


def _expired(valid_until: str | None, now: dt.datetime) -> bool:
    if valid_until is None:  # never ('infinity' is read as None too)
        return False
    if valid_until == "-infinity":
        return True
    return dt.datetime.fromisoformat(valid_until) <= now


def check_connection_room(plan: Plan, before: Fingerprint, after: Fingerprint, conn: Conn) -> Check:
    """``after`` was read from ``conn``'s database, unchanged since."""
    row = conn.execute("SELECT now()").fetchone()
    now: dt.datetime = row[0] if row else dt.datetime.now(dt.UTC)
    pool, pooler = _pool_per_role(plan)
    roles = [r for r in workload_of(plan).roles if r in after.roles]
    offenders = []
    for name in roles:
        role, was = after.roles[name], before.roles.get(name)
        limit = role.connection_limit
        if 0 <= limit < pool and (was is None or was.connection_limit != limit):
            offenders.append(
                f"{name} may open {limit} connection{'s' if limit != 1 else ''} per server "
                f"(CONNECTION LIMIT {limit}, set by the migration), but the plan's {pooler} "
                f'opens up to {pool} as {name}: past {limit}, "too many connections for role" '
                "under load"
            )
        if _expired(role.valid_until, now) and (was is None or was.valid_until != role.valid_until):
            offenders.append(
                f"{name}'s password expired at {role.valid_until} (VALID UNTIL, set by the "
                "migration): every password login as it fails (this harness's own servers let "
                "it in without one, so its sessions did not meet it)"
            )
    db, db_before = after.database, before.database
    if not db.allow_connections and db_before.allow_connections:
        offenders.append(
            "the migration closed the database to new connections (ALLOW_CONNECTIONS false)"
        )
    need = pool * len(roles)
    if 0 <= db.connection_limit < need and db.connection_limit != db_before.connection_limit:
        offenders.append(
            f"the database admits {db.connection_limit} connections (CONNECTION LIMIT, set by "
            f"the migration), but the plan's {pooler} alone opens up to {pool} for each of "
            f"{', '.join(roles)}: {need}"
        )
    return Check.of(
        NAME,
        offenders=offenders,
        ok=(
            f"{', '.join(roles) or 'no application role'}: room for the {pool} server connections "
            f"the plan's {pooler} opens as each, in the role's and the database's connection "
            "limits, and no password expired"
        ),
        failed="the migration leaves the application too few connections, or none",
    )
