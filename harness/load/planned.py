"""The load config with the plan's own pooling: its PgBouncers and its application pools.

Two plans may pool differently (the plan as written keeps the seed's numbers,
the corrected plan its own), and the local target runs the plan's PgBouncers,
so the numbers the comparison reports and the instances use come from the
plan: ``[pgbouncer]`` (or the engine's defaults, which are the seed's) and
``[application]`` when the plan has it. A ``--config`` file that names one of
these numbers with another value is refused rather than silently replaced: it
would describe servers the run does not use.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.cluster.pooling import DEFAULT_POOLERS
from harness.errors import UsageError
from harness.load.config import LoadConfig
from harness.plan import Plan

__all__ = ["plan_numbers", "with_plan"]


def plan_numbers(plan: Plan) -> dict[str, Any]:
    """``[target]`` keys and the values the plan gives them."""
    poolers = plan.pgbouncer or DEFAULT_POOLERS
    numbers: dict[str, Any] = {}
    for bouncer in poolers.both:
        role = bouncer.role
        numbers[f"{role}_pool_mode"] = bouncer.pool_mode
        numbers[f"{role}_max_client_conn"] = bouncer.max_client_conn
        numbers[f"{role}_default_pool_size"] = bouncer.default_pool_size
        numbers[f"{role}_reserve_pool_size"] = bouncer.reserve_pool_size
    app = plan.application
    if app is not None:
        for role, pool in (("writer", app.writer), ("reader", app.reader)):
            numbers[f"{role}_min_size"] = pool.min_size
            numbers[f"{role}_max_size"] = pool.max_size
            numbers[f"{role}_max_idle"] = pool.max_idle
        numbers["pool_timeout"] = app.pool_timeout
        numbers["connect_timeout"] = app.connect_timeout
    return numbers


def with_plan(config: LoadConfig, plan: Plan) -> LoadConfig:
    """``config`` whose ``[target]`` pooling is the plan's; exit 2 on a conflicting file."""
    numbers = plan_numbers(plan)
    conflicts = [
        f"{key} = {getattr(config.target, key)!r} (the plan gives {value!r})"
        for key, value in numbers.items()
        if f"target.{key}" in config.overridden and getattr(config.target, key) != value
    ]
    if conflicts:
        raise UsageError(
            f"{config.source}: [target] {'; '.join(conflicts)}: the local cluster runs the "
            f"plan's [pgbouncer] and its instances the plan's [application] pools; change "
            f"them in {plan.directory / 'plan.toml'}, or compare against your own servers "
            "with --baseline-url and --target-url"
        )
    return dataclasses.replace(config, target=dataclasses.replace(config.target, **numbers))
