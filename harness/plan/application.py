"""``[application]`` in plan.toml: the pools each application instance opens.

The plan's ``dbConfig`` sizes a writer and a reader pool per instance. Those
sizes decide how many clients PgBouncer sees (instances times connections per
instance), so they belong to the plan beside its ``[pgbouncer]`` settings,
each with its reason, rather than to the load tool::

    [application]
    pool_timeout = 2.0         # seconds a request waits for a pooled connection
    connect_timeout = 2.0      # seconds opening one connection may take

    [application.writer]       # DATABASE_URL, through PgBouncer's writer
    min_size = 1               # connections opened at a cold start and kept
    max_size = 10              # the most one instance opens
    max_idle = 30.0            # seconds an idle connection above min_size is kept

    [application.reader]       # DATABASE_READONLY_URL, through PgBouncer's reader
    min_size = 1
    max_size = 20
    max_idle = 60.0

``harness load compare`` and ``harness load tune`` give the target's instances
these pools; a plan without the section keeps the load config's ``[target]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.cluster.pooling import DEFAULT_POOLERS, Poolers
from harness.errors import PlanError

__all__ = ["ApplicationPool", "ApplicationPools", "check_against_poolers", "parse_application"]

_TOP = ("pool_timeout", "connect_timeout", "writer", "reader")
_POOL = ("min_size", "max_size", "max_idle")


@dataclass(frozen=True, kw_only=True)
class ApplicationPool:
    """One instance's pool to one PgBouncer; ``max_idle`` in seconds."""

    min_size: int
    max_size: int
    max_idle: float


@dataclass(frozen=True, kw_only=True)
class ApplicationPools:
    writer: ApplicationPool
    reader: ApplicationPool
    pool_timeout: float
    connect_timeout: float


def _number(raw: dict[str, object], key: str, *, where: str, whole: bool, least: float) -> float:
    value = raw.get(key)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < least:
        what = "a whole number" if whole else "a number"
        raise PlanError(f"{where} {key} = {value!r}; it must be {what} of at least {least:g}")
    return value


def _pool(raw: object, *, where: str) -> ApplicationPool:
    if not isinstance(raw, dict):
        raise PlanError(f"{where} must be a table with {', '.join(_POOL)}")
    unknown = sorted(set(raw) - set(_POOL))
    if unknown:
        raise PlanError(
            f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(_POOL)}"
        )
    low = int(_number(raw, "min_size", where=where, whole=True, least=0))
    high = int(_number(raw, "max_size", where=where, whole=True, least=1))
    if low > high:
        raise PlanError(f"{where} min_size {low} is above max_size {high}; lower min_size")
    idle = float(_number(raw, "max_idle", where=where, whole=False, least=0))
    return ApplicationPool(min_size=low, max_size=high, max_idle=idle)


def parse_application(raw: object, *, toml_path: Path) -> ApplicationPools | None:
    """The plan's application pools; None when the plan has no ``[application]``."""
    if raw is None:
        return None
    where = f"{toml_path}: [application]"
    if not isinstance(raw, dict):
        raise PlanError(f"{where} must be a table")
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise PlanError(
            f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(_TOP)}"
        )
    missing = [k for k in _TOP if k not in raw]
    if missing:
        raise PlanError(f"{where} is missing {', '.join(missing)}; give every pool its numbers")
    return ApplicationPools(
        writer=_pool(raw["writer"], where=f"{toml_path}: [application.writer]"),
        reader=_pool(raw["reader"], where=f"{toml_path}: [application.reader]"),
        pool_timeout=_number(raw, "pool_timeout", where=where, whole=False, least=0.001),
        connect_timeout=_number(raw, "connect_timeout", where=where, whole=False, least=0.001),
    )


def check_against_poolers(
    pools: ApplicationPools | None, poolers: Poolers | None, *, toml_path: Path
) -> None:
    """One instance's pool cannot be larger than the PgBouncer it connects to admits."""
    if pools is None:
        return
    poolers = poolers or DEFAULT_POOLERS
    for role, pool, bouncer in (
        ("writer", pools.writer, poolers.writer),
        ("reader", pools.reader, poolers.reader),
    ):
        if pool.max_size > bouncer.max_client_conn:
            raise PlanError(
                f"{toml_path}: [application.{role}] max_size {pool.max_size} is above "
                f"[pgbouncer.{role}] max_client_conn {bouncer.max_client_conn}: one instance "
                "could fill the pooler alone; lower max_size or raise max_client_conn"
            )
