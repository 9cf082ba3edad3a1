"""``harness load tune``: the smallest pooling that meets the plan's targets, found by measuring.

The space is the plan's pooling: each PgBouncer's pool mode, ``default_pool_size``
and ``reserve_pool_size``, ``max_client_conn``, and each instance's own pool
(``min_size``, ``max_size``). No formula decides: every candidate the budget
reaches is measured with a short run of the plan's workload against one
baseline run. The capacity arithmetic that already names the setting capping
a plan (:mod:`harness.load.capacity`) only prunes: a candidate whose own numbers
refuse the requested instances, or whose pools do not fit the server's
``max_connections``, is not worth a run. Candidates run fewest server
connections first, so the first that meets both targets is the smallest.

A single short run per candidate screens; it does not prove. The snippet it
prints says so, and ``harness load compare --repeat 3`` on the plan holding it
is the verdict.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster.pooling import Poolers, PoolSettings
from harness.errors import InfrastructureError, UsageError
from harness.load.capacity import capped_by, limits
from harness.load.compare import CompareOptions, configure, environment_for, run_one
from harness.load.config import LoadConfig
from harness.load.instance import load_samples
from harness.load.planned import with_plan
from harness.load.poolerview import PoolerView
from harness.load.results import RunResult, reduction
from harness.load.workload import workload_for
from harness.plan import Plan, load_plan
from harness.progress import Progress

__all__ = ["Candidate", "TuneOptions", "TuneOutcome", "candidates", "run_tune", "snippet"]

#: seconds a run costs beyond its duration: Locust's start, its stop timeout, the CSVs
RUN_OVERHEAD = 8.0
#: seconds restarting the target's two PgBouncers with a candidate's settings costs
RESTART_COST = 3.0
#: server connections kept free beside the pools (superuser_reserved_connections 3,
#: the harness's probes and the router's health checks through their own pools)
SERVER_HEADROOM = 10
POOL_SIZES = (5, 10, 20, 40)
RESERVES = (0, 5)
READER_MODES = ("transaction", "session")
APP_MIN_SIZES = (1, 2)
# The plan's own dbConfig max (10) first, then the least an instance serving one request
# at a time can do with while a connection is replaced (2).
APP_MAX_SIZES = (10, 2)


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One pooling: both PgBouncers' settings and each instance's pools."""

    reader_mode: str
    pool_size: int
    reserve: int
    min_size: int
    max_size: int
    max_client_conn: int

    @property
    def server_connections(self) -> int:
        """What the two PgBouncers may open to their servers at most (one pool each)."""
        return 2 * (self.pool_size + self.reserve)

    def label(self) -> str:
        return (
            f"reader {self.reader_mode}, default_pool_size {self.pool_size} + reserve "
            f"{self.reserve}, max_client_conn {self.max_client_conn}, instance pools min "
            f"{self.min_size} max {self.max_size}"
        )

    def poolers(self, base: Poolers) -> Poolers:
        def one(settings: PoolSettings, mode: str) -> PoolSettings:
            return dataclasses.replace(
                settings,
                pool_mode=mode,
                default_pool_size=self.pool_size,
                reserve_pool_size=self.reserve,
                max_client_conn=self.max_client_conn,
                # a waiting client gets the reserve after a second, not after five
                reserve_pool_timeout=1 if self.reserve else settings.reserve_pool_timeout,
            )

        return Poolers(
            writer=one(base.writer, "transaction"), reader=one(base.reader, self.reader_mode)
        )

    def config(self, config: LoadConfig) -> LoadConfig:
        """``config`` as the candidate's instances and PgBouncers would run."""
        target = dataclasses.replace(
            config.target,
            reader_pool_mode=self.reader_mode,
            writer_pool_mode="transaction",
            writer_default_pool_size=self.pool_size,
            reader_default_pool_size=self.pool_size,
            writer_reserve_pool_size=self.reserve,
            reader_reserve_pool_size=self.reserve,
            writer_max_client_conn=self.max_client_conn,
            reader_max_client_conn=self.max_client_conn,
            writer_min_size=self.min_size,
            reader_min_size=self.min_size,
            writer_max_size=self.max_size,
            reader_max_size=self.max_size,
        )
        return dataclasses.replace(config, target=target)


def _clients_needed(users: int, *, max_size: int) -> int:
    """max_client_conn for ``users`` instances each at its pool's max_size + 1 health check,
    rounded up to a hundred: the pooler never refuses an instance."""
    return int(math.ceil(users * (max_size + 1) / 100) * 100)


@dataclass(frozen=True, kw_only=True)
class Pruned:
    candidate: Candidate
    reason: str


def candidates(config: LoadConfig, *, users: int) -> tuple[list[Candidate], list[Pruned]]:
    """Every candidate worth a run, fewest server connections first, and those pruned."""
    kept: list[Candidate] = []
    pruned: list[Pruned] = []
    for mode, size, reserve, low, high in itertools.product(
        READER_MODES, POOL_SIZES, RESERVES, APP_MIN_SIZES, APP_MAX_SIZES
    ):
        cand = Candidate(
            reader_mode=mode,
            pool_size=size,
            reserve=reserve,
            min_size=low,
            max_size=high,
            max_client_conn=_clients_needed(users, max_size=high),
        )
        room = config.target.max_connections - SERVER_HEADROOM
        if size + reserve > room:
            limit = config.target.max_connections
            said = f"a pool of {size + reserve} does not fit max_connections {limit}"
            pruned.append(Pruned(candidate=cand, reason=said))
            continue
        capped = capped_by(cand.config(config), users=users)
        if capped:
            pruned.append(Pruned(candidate=cand, reason=capped[0].describe()))
            continue
        kept.append(cand)
    kept.sort(
        key=lambda c: (
            c.server_connections,
            -c.max_size,
            c.min_size,
            c.reader_mode != "transaction",
        )
    )
    return kept, pruned


@dataclass(frozen=True, kw_only=True)
class TuneOptions:
    plan: Path
    users: int
    budget: float
    duration: int = 20
    config: Path | None = None
    reports: Path = Path("reports")
    pg_bin: str | None = None
    scale: int = 1
    migrate_with: Path | None = None


@dataclass(kw_only=True)
class Trial:
    candidate: Candidate
    run: RunResult
    error_reduction: float | None
    p95_reduction: float | None
    meets: bool
    #: PgBouncer's view of the run (writer, reader): the settings it really ran with
    poolers: list[PoolerView] = field(default_factory=list)


@dataclass(kw_only=True)
class TuneOutcome:
    config: LoadConfig
    plan: Plan
    users: int
    baseline: RunResult | None = None
    trials: list[Trial] = field(default_factory=list)
    pruned: list[Pruned] = field(default_factory=list)
    untried: int = 0
    seconds: float = 0.0
    #: the cores each architecture's nodes and Locust were pinned to (empty: not pinned)
    placement: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def found(self) -> Trial | None:
        return next((t for t in self.trials if t.meets), None)

    @property
    def exit_code(self) -> int:
        return 0 if self.found else 1


def run_cost(duration: int) -> float:
    """Seconds one candidate's run takes, as the budget counts it."""
    return duration + RUN_OVERHEAD + RESTART_COST


def _latency(run: RunResult) -> float:
    return run.succeeded_p95_ms if run.succeeded_p95_ms is not None else run.p95_ms


def _meets(
    config: LoadConfig, base: RunResult, run: RunResult
) -> tuple[float | None, float | None, bool]:
    if run.requests == 0:  # nothing completed: no evidence either way
        return None, None, False
    errors = reduction(base.pool_error_rate, run.pool_error_rate)
    latency = reduction(_latency(base), _latency(run))
    meets = (
        errors is not None
        and errors >= config.targets.error_reduction
        and latency is not None
        and latency >= config.targets.p95_reduction
    )
    return errors, latency, meets


def run_tune(options: TuneOptions, *, progress: Progress) -> TuneOutcome:
    """Check the input, measure candidates within the budget, return what was found."""
    needed = 2 * run_cost(options.duration)
    if options.budget < needed:
        raise UsageError(
            f"--budget {options.budget:g} s is under one candidate run: the baseline and one "
            f"candidate at --duration {options.duration} take about {needed:.0f} s; raise "
            "--budget or shorten --duration"
        )
    compare = CompareOptions(
        config=options.config,
        users=options.users,
        duration=options.duration,
        plan=options.plan,
        reports=options.reports,
        pg_bin=options.pg_bin,
        scale=options.scale,
        migrate_with=options.migrate_with,
    )
    config = configure(compare)
    plan = load_plan(options.plan)
    config = with_plan(config, plan)
    workload = workload_for(options.plan).weighted(config.mix)
    kept, pruned = candidates(config, users=options.users)
    outcome = TuneOutcome(config=config, plan=plan, users=options.users, pruned=pruned)
    progress(
        f"tune: {len(kept)} candidates to measure, {len(pruned)} pruned by capacity "
        f"arithmetic; budget {options.budget:g} s, {options.duration} s a run"
    )
    out = options.reports / "load" / "tune"
    started = time.monotonic()
    with environment_for(compare, config, plan=options.plan, progress=progress) as env:
        if env.reconfigure is None:
            raise UsageError(
                "harness load tune restarts PgBouncer per candidate: local servers only"
            )
        load_samples(env.baseline_url, workload)
        load_samples(env.target_writer_url, workload)
        started = time.monotonic()
        # Every instance started within the run's first quarter, as a sweep point's, and
        # judged from then on: a fleet starting whole in a few seconds is this search's own
        # haste, not the load it asks about (instances keep recycling, and cold-starting,
        # all through the rest of the run).
        rate = max(config.run.spawn_rate, options.users / (0.25 * options.duration))
        outcome.baseline = run_one(env, config, compare, architecture="baseline",
                                   users=options.users, duration=options.duration,
                                   prefix=out / "baseline", progress=progress,
                                   spawn_rate=rate, placed=outcome.placement,
                                   after_start=True)  # fmt: skip
        if outcome.baseline.requests == 0:
            raise InfrastructureError(
                f"the baseline completed no request in {options.duration} s (a busy machine "
                "or a slow start): nothing to compare candidates with; raise --duration"
            )
        base_poolers = plan.pgbouncer or Poolers()
        for number, cand in enumerate(kept, start=1):
            spent = time.monotonic() - started
            if spent + run_cost(options.duration) > options.budget:
                outcome.untried = len(kept) - number + 1
                progress(
                    f"tune: budget spent ({spent:.0f} s); {outcome.untried} candidates untried"
                )
                break
            progress(f"tune: candidate {number}/{len(kept)}: {cand.label()}")
            env.reconfigure(cand.poolers(base_poolers))
            cand_config = cand.config(config)
            views: list[PoolerView] = []
            run = run_one(env, cand_config, compare, architecture="target",
                          users=options.users, duration=options.duration,
                          prefix=out / f"candidate{number}", progress=progress,
                          spawn_rate=rate, views=views,
                          placed=outcome.placement, after_start=True)  # fmt: skip
            errors, latency, meets = _meets(config, outcome.baseline, run)
            outcome.trials.append(Trial(candidate=cand, run=run, error_reduction=errors,
                                        p95_reduction=latency, meets=meets,
                                        poolers=views))  # fmt: skip
            if meets:
                break
    outcome.seconds = time.monotonic() - started
    return outcome


def snippet(outcome: TuneOutcome, trial: Trial) -> str:
    """The candidate as plan.toml sections, each number with its reason, to paste."""
    cand, users, config = trial.candidate, outcome.users, outcome.config
    wanted = config.targets
    per = cand.max_size + 1
    lines = [
        f"# Found by harness load tune at {users} instances, {config.run.duration} s a run: pool "
        f"errors {_pct(trial.error_reduction)}, successful requests' p95 "
        f"{_pct(trial.p95_reduction)} against the baseline (the plan asks "
        f"-{wanted.error_reduction:.0%} and -{wanted.p95_reduction:.0%}).",
        "# One short run screens; confirm with harness load compare --repeat 3, and with",
        "# harness gate: the application's whole traffic through these pools, not the load's only.",
    ]
    for role, mode in (("writer", "transaction"), ("reader", cand.reader_mode)):
        lines += [
            f"[pgbouncer.{role}]",
            "# transaction pooling: a server connection is held for a transaction only,"
            if mode == "transaction"
            else "# session pooling: each client holds a server connection while connected,",
            "# so instances share the pool instead of each pinning connections"
            if mode == "transaction"
            else "# which the capacity arithmetic admitted at this load",
            f'pool_mode = "{mode}"',
            f"# {users} instances x {per} connections at most (the instance pool's max_size +",
            "# the router's health check), rounded up to a hundred: no instance is refused",
            f"max_client_conn = {cand.max_client_conn}",
            "# the fewest server connections measured to meet both targets",
            f"default_pool_size = {cand.pool_size}",
            "# extra server connections for a burst of waiting clients",
            f"reserve_pool_size = {cand.reserve}",
        ]
        if cand.reserve:
            lines += [
                "# seconds a client waits before the reserve opens",
                "reserve_pool_timeout = 1",
            ]
        lines.append("")
    lines += [
        "[application]",
        "# seconds a request waits for a pooled connection",
        f"pool_timeout = {config.target.pool_timeout:g}",
        "# seconds opening one connection may take",
        f"connect_timeout = {config.target.connect_timeout:g}",
        "",
    ]
    for role, idle in (("writer", config.target.writer_max_idle),
                       ("reader", config.target.reader_max_idle)):  # fmt: skip
        lines += [
            f"[application.{role}]",
            "# opened at a cold start and kept: what each instance costs PgBouncer",
            f"min_size = {cand.min_size}",
            "# the most connections one instance opens",
            f"max_size = {cand.max_size}",
            "# seconds an idle connection above min_size is kept",
            f"max_idle = {idle:g}",
            "",
        ]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{-value:+.0%}"


def capacity_lines(outcome: TuneOutcome, trial: Trial) -> list[str]:
    """What each of the found configuration's settings admits (its capacity by setting)."""
    config = trial.candidate.config(outcome.config)
    return [x.describe() for x in limits(config) if x.architecture == "target"]


def to_json(outcome: TuneOutcome) -> dict[str, Any]:
    found = outcome.found
    return {
        "plan": outcome.plan.name,
        "users": outcome.users,
        "seconds": round(outcome.seconds, 1),
        "baseline": None if outcome.baseline is None else outcome.baseline.to_json(history=False),
        "trials": [
            {
                "candidate": dataclasses.asdict(t.candidate),
                "server_connections": t.candidate.server_connections,
                "run": t.run.to_json(history=False),
                "error_reduction": t.error_reduction,
                "p95_reduction": t.p95_reduction,
                "meets": t.meets,
                "pgbouncer": [v.to_json() for v in t.poolers],
            }
            for t in outcome.trials
        ],
        "pruned": [
            {"candidate": dataclasses.asdict(p.candidate), "reason": p.reason}
            for p in outcome.pruned
        ],
        "untried": outcome.untried,
        "cpu_placement": outcome.placement,
        "found": None if found is None else dataclasses.asdict(found.candidate),
        "snippet": None if found is None else snippet(outcome, found),
        "capacity": [] if found is None else capacity_lines(outcome, found),
    }
