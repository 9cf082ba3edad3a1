"""``harness load compare``: the plan's success metrics, measured on both architectures.

Everything the user gave is checked first (the config, the parameters, the
plan, the servers' reachability), so bad input ends the command with exit 2
before any load. Then baseline and target alternate (A B A B ...) for
``repeat`` rounds with the same workload, parameters and seed, so drift on a
shared machine lands on both sides; each target is judged on the interval of
its reductions (:mod:`harness.load.confidence`). Optionally the sweep over
instance counts and the pgbench cross-check; the report goes to ``reports/load/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster.pooling import DEFAULT_POOLERS
from harness.errors import InfrastructureError, UsageError
from harness.load.capacity import describe_pooling
from harness.load.confidence import INCONCLUSIVE_EXIT
from harness.load.config import LoadConfig, load_config
from harness.load.cpu import cpu_seconds, per_request_ms
from harness.load.environment import (
    LoadEnvironment,
    check_loopback,
    check_reachable,
    local_environment,
)
from harness.load.handshake import open_ms, server_sessions
from harness.load.instance import load_samples
from harness.load.locust import LocustRun, run_locust
from harness.load.pinning import Placement, available_cores, pin_nodes, place
from harness.load.planned import with_plan
from harness.load.poolerview import PoolerView, sample_poolers
from harness.load.results import RunResult, Verdict, pool_rounds, read_run, reduction, verdict
from harness.load.workload import Workload, workload_for
from harness.plan import Plan, load_plan
from harness.progress import Progress

__all__ = [
    "CompareOptions",
    "CompareOutcome",
    "configure",
    "environment_for",
    "round_prefix",
    "run_compare",
    "run_one",
    "verdicts",
]

REFERENCES = ("pgbench",)
#: a cap on --repeat: each round is two full runs
MAX_REPEAT = 20


def round_prefix(out: Path, *, number: int, architecture: str) -> Path:
    """Where round ``number``'s Locust CSVs go: ``round1/baseline_stats.csv`` and so on."""
    return out / f"round{number}" / architecture


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    config: Path | None = None
    users: int | None = None
    spawn_rate: float | None = None
    duration: int | None = None
    seed: int | None = None
    reports: Path = Path("reports")
    sweep: bool = False
    #: another plan whose pooling is swept on the same target, beside the plan's own
    sweep_also: Path | None = None
    reference: str | None = None
    plan: Path | None = None  # None: the config's [run] plan
    scale: int = 1
    #: the plan's legacy database (a dump); None: the built-in one
    legacy: Path | None = None
    pg_bin: str | None = None
    baseline_url: str | None = None
    target_url: str | None = None
    target_reader_url: str | None = None
    workers: int = 0
    #: rounds of baseline then target; each target is judged on its interval over them
    repeat: int = 3
    #: a plan whose steps build the target's layout (None: the plan's own)
    migrate_with: Path | None = None


@dataclass(kw_only=True)
class CompareOutcome:
    config: LoadConfig
    environment: dict[str, str]
    #: each architecture's rounds pooled (counts summed, percentiles averaged)
    runs: dict[str, RunResult]
    verdicts: list[Verdict]
    #: each round's results, in the order they ran
    rounds: list[dict[str, RunResult]] = field(default_factory=list)
    #: PgBouncer's view of the target in each round (one per admin console)
    poolers: list[list[PoolerView]] = field(default_factory=list)
    #: the machine's 1-minute load average at the end of each round's runs
    load_average: list[dict[str, float]] = field(default_factory=list)
    #: cores Locust used on average during each round's runs
    locust_cpu: list[dict[str, float]] = field(default_factory=list)
    #: CPU ms per request each node (servers, PgBouncers, Locust) spent in each round's runs
    node_cpu: list[dict[str, dict[str, float]]] = field(default_factory=list)
    #: the cores each architecture's nodes and Locust were pinned to (empty: not pinned)
    placement: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    sweep: dict[str, list[RunResult]] = field(default_factory=dict)
    #: the pooling each extra sweep curve ran with (``--sweep-also``), by curve
    sweep_pooling: dict[str, list[str]] = field(default_factory=dict)
    pgbench: dict[str, Any] | None = None
    #: the median time to open one connection on each path, before any load (ms)
    open_ms: dict[str, float | None] = field(default_factory=dict)
    #: the server connections each side opened in each round (None: not counted)
    server_sessions: list[dict[str, int | None]] = field(default_factory=list)

    @property
    def missed(self) -> list[Verdict]:
        """Every target not met, whatever the reason (missed, inconclusive, not measurable)."""
        return [v for v in self.verdicts if not v.met]

    @property
    def exit_code(self) -> int:
        """0 every target met; 1 one missed (its interval short of it); 3 otherwise unsettled."""
        if any(v.status == "missed" for v in self.verdicts):
            return 1
        return INCONCLUSIVE_EXIT if self.missed else 0


def configure(options: CompareOptions) -> LoadConfig:
    config = load_config(options.config)
    changes = {
        name: value
        for name, value in (
            ("users", options.users),
            ("spawn_rate", options.spawn_rate),
            ("duration", options.duration),
            ("seed", options.seed),
        )
        if value is not None
    }
    return config.with_run(**changes) if changes else config


@contextlib.contextmanager
def environment_for(
    options: CompareOptions, config: LoadConfig, *, plan: Path, progress: Progress
) -> Iterator[LoadEnvironment]:
    given = [options.baseline_url, options.target_url]
    if any(given) and not all(given):
        raise UsageError(
            "--baseline-url and --target-url go together (with --target-reader-url optional): "
            "pass both to load your own servers, or neither to start local ones"
        )
    if options.baseline_url and options.target_url:
        for url, what in (
            (options.baseline_url, "baseline (--baseline-url)"),
            (options.target_url, "target writer (--target-url)"),
            (options.target_reader_url, "target reader (--target-reader-url)"),
        ):
            if url:
                check_loopback(url, what=what)
        check_reachable(options.baseline_url, what="baseline (--baseline-url)")
        check_reachable(options.target_url, what="target writer (--target-url)")
        if options.target_reader_url:
            check_reachable(options.target_reader_url, what="target reader (--target-reader-url)")
        yield LoadEnvironment(
            baseline_url=options.baseline_url,
            target_writer_url=options.target_url,
            target_reader_url=options.target_reader_url,
            provider="external",
        )
        return
    if options.legacy is not None and not options.legacy.exists():
        raise UsageError(
            f"--legacy {options.legacy}: no such file or directory; give the plan's legacy "
            "database as a SQL dump or pg_dump archive, or leave it out for the built-in one"
        )
    with local_environment(
        config,
        plan_dir=plan,
        scale=options.scale,
        pg_bin=options.pg_bin,
        progress=progress,
        legacy=options.legacy,
        migrate_with=options.migrate_with,
    ) as env:
        yield env


def _paths(env: LoadEnvironment) -> list[tuple[str, str | None]]:
    """Each path an instance connects by, named for the report."""
    return [
        ("baseline, direct", env.baseline_url),
        ("target, writer", env.target_writer_url),
        ("target, reader", env.target_reader_url),
    ]


def _urls(env: LoadEnvironment, architecture: str) -> tuple[str, str | None]:
    if architecture == "baseline":
        return env.baseline_url, None
    return env.target_writer_url, env.target_reader_url


def run_one(
    env: LoadEnvironment,
    config: LoadConfig,
    options: CompareOptions,
    *,
    architecture: str,
    users: int,
    duration: int,
    prefix: Path,
    progress: Progress,
    spawn_rate: float | None = None,
    views: list[PoolerView] | None = None,
    cpu: dict[str, float] | None = None,
    nodes: dict[str, dict[str, float]] | None = None,
    placed: dict[str, dict[str, list[int]]] | None = None,
    after_start: bool = False,
) -> RunResult:
    """One Locust run; ``views`` gets PgBouncer's view of a target run, ``cpu`` the cores
    Locust's processes used on average over it (near 1 per process: the load generator
    itself was saturated, and its requests waited for it); ``nodes`` the CPU ms per request
    each of this machine's nodes of the run spent, Locust's included; ``placed`` the cores
    each node and Locust were pinned to, when ``[machine] pin_cpus`` pinned them.
    ``after_start``: count only the requests after every instance has started."""
    writer, reader = _urls(env, architecture)
    for stale in prefix.parent.glob(prefix.name + "_*"):
        stale.unlink()
    consoles = env.pgbouncer_admin if views is not None and architecture == "target" else ()
    pids = env.processes(architecture) if env.processes is not None else {}
    placement = _pinned(config, pids, generators=options.workers)
    if placement is not None and placed is not None:
        placed[architecture] = placement.to_json()
    servers_before = cpu_seconds(pids)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with sample_poolers(consoles) as sampled:
        _locust(
            env, config, options, architecture=architecture, users=users, duration=duration,
            prefix=prefix, progress=progress, spawn_rate=spawn_rate, writer=writer, reader=reader,
            cores=None if placement is None else placement.generator, after_start=after_start,
        )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    servers_after = cpu_seconds(pids)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if cpu is not None:
        cpu[architecture] = used / max(1e-9, time.monotonic() - started)
    if views is not None:
        views.extend(sampled)
    result = read_run(prefix, architecture=architecture, users=users)
    if nodes is not None:
        nodes[architecture] = per_request_ms(
            {**servers_before, "Locust": 0.0},
            {**servers_after, "Locust": used},
            requests=result.requests,
        )
    progress(
        f"{architecture}: {result.requests} requests, {result.failures} failed "
        f"({result.error_rate:.1%}), p95 {result.p95_ms:.0f} ms"
    )
    return result


def _locust(
    env: LoadEnvironment,
    config: LoadConfig,
    options: CompareOptions,
    *,
    architecture: str,
    users: int,
    duration: int,
    prefix: Path,
    progress: Progress,
    spawn_rate: float | None,
    writer: str,
    reader: str | None,
    cores: tuple[int, ...] | None,
    after_start: bool,
) -> None:
    run_locust(
        LocustRun(
            architecture=architecture,
            writer_url=writer,
            reader_url=reader,
            users=users,
            spawn_rate=spawn_rate or config.run.spawn_rate,
            duration=duration,
            seed=config.run.seed,
            stop_timeout=config.run.stop_timeout,
            config=options.config,
            plan=options.plan,
            workers=options.workers,
            cores=cores,
            after_start=after_start,
            target=config.target,  # the instances open the pools this run is judged with
        ),
        csv_prefix=prefix,
        progress=progress,
    )


def sweep_spawn_rate(config: LoadConfig, *, users: int) -> float:
    """Fast enough that a sweep point has all its instances for 3/4 of its duration.

    At the run's own rate a short point would still be ramping up when it ends
    and would measure fewer instances than it is plotted at.
    """
    return max(config.run.spawn_rate, users / (0.25 * config.sweep.duration))


def _latency(run: RunResult) -> float:
    """What the latency target is judged on: successful requests' p95 (all, if none succeeded)."""
    return run.succeeded_p95_ms if run.succeeded_p95_ms is not None else run.p95_ms


def verdicts(config: LoadConfig, rounds: Sequence[Mapping[str, RunResult]]) -> list[Verdict]:
    """Both targets judged on every round: pool errors, and successful requests' p95.

    Refused requests are fast and timed-out ones slow, so a p95 over every
    request can flatter either side; the all-requests p95 is shown beside it.
    """
    base = [r["baseline"] for r in rounds]
    target = [r["target"] for r in rounds]
    mean_all = (
        sum(r.p95_ms for r in base) / len(base),
        sum(r.p95_ms for r in target) / len(target),
    )
    return [
        verdict(
            metric="connection pool error rate",
            baseline=[r.pool_error_rate for r in base],
            target=[r.pool_error_rate for r in target],
            wanted=config.targets.error_reduction,
            unit="",
        ),
        verdict(
            metric="p95 latency of successful requests",
            baseline=[_latency(r) for r in base],
            target=[_latency(r) for r in target],
            wanted=config.targets.p95_reduction,
            unit=" ms",
            note=f" (all requests' p95: {mean_all[0]:.3g} ms -> {mean_all[1]:.3g} ms)",
        ),
    ]


def _pinned(config: LoadConfig, pids: Mapping[str, int], *, generators: int) -> Placement | None:
    """The side's nodes pinned to their cores, where ``[machine] pin_cpus`` asks: afresh
    each run, since a restarted PgBouncer has a new pid. Their placement, with the
    load generator's cores; None when not pinned."""
    if not config.machine.pin_cpus:
        return None
    placement = place(pids, cores=available_cores(), generators=generators)
    if placement is not None:
        pin_nodes(placement, pids)
    return placement


def _pgbench(
    env: LoadEnvironment,
    config: LoadConfig,
    workload: Workload,
    options: CompareOptions,
    *,
    samples: Mapping[str, Mapping[str, Sequence[Mapping[str, object]]]],
    out: Path,
    progress: Progress,
) -> dict[str, Any]:
    from harness.load.pgbench import find_pgbench, run_pgbench

    pgbench = find_pgbench(options.pg_bin)
    results = {}
    for architecture in ("baseline", "target"):
        url = _urls(env, architecture)[0]
        progress(f"pgbench -C against the {architecture}: {config.run.users} clients")
        pids = env.processes(architecture) if env.processes is not None else {}
        placement = _pinned(config, pids, generators=1)  # the cores Locust's runs had
        results[architecture] = run_pgbench(
            pgbench=pgbench,
            url=url,
            architecture=architecture,
            workload=workload,
            samples=samples[architecture],
            clients=config.run.users,
            jobs=config.pgbench.jobs,
            duration=config.pgbench.duration,
            workdir=out / "pgbench",
            cores=None if placement is None else placement.generator,
        )
    base, target = results["baseline"], results["target"]
    return {
        "baseline": base.to_json(),
        "target": target.to_json(),
        "error_reduction": reduction(base.error_rate, target.error_rate),
        "p95_reduction": reduction(base.p95_ms or 0.0, target.p95_ms or 0.0),
    }


def _sweep_pooling(
    env: LoadEnvironment,
    config: LoadConfig,
    options: CompareOptions,
    *,
    also: Plan,
    own: Plan,
    out: Path,
    outcome: CompareOutcome,
    progress: Progress,
) -> None:
    """The target swept again with ``also``'s pooling (its PgBouncers and instance pools,
    the same migrated database), then its own PgBouncers back: one more capacity curve."""
    assert env.reconfigure is not None  # checked before any load
    name = f"target, {also.name}'s pooling"
    other = with_plan(config, also)
    progress(f"sweep: the target with plan {also.name!r}'s pooling")
    env.reconfigure(also.pgbouncer or DEFAULT_POOLERS)
    try:
        for users in config.sweep.instances:
            outcome.sweep.setdefault(name, []).append(
                run_one(env, other, options, architecture="target", users=users,
                        duration=config.sweep.duration, prefix=out / "sweep" / f"also-{users}",
                        progress=progress, spawn_rate=sweep_spawn_rate(config, users=users))
            )  # fmt: skip
    finally:
        env.reconfigure(own.pgbouncer or DEFAULT_POOLERS)
    outcome.sweep_pooling[name] = describe_pooling(other)


def run_compare(options: CompareOptions, *, progress: Progress) -> CompareOutcome:
    """Check the input, run both architectures (and the sweep, pgbench), return what was found."""
    if options.reference is not None and options.reference not in REFERENCES:
        raise UsageError(
            f"--reference {options.reference!r} is not known; use {', '.join(REFERENCES)}"
        )
    if options.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {options.workers}")
    if not 1 <= options.repeat <= MAX_REPEAT:
        raise UsageError(
            f"--repeat {options.repeat}: give 1 to {MAX_REPEAT} rounds (3, the default, is the "
            "fewest that give an interval worth reading)"
        )
    if options.sweep_also is not None and not options.sweep:
        raise UsageError("--sweep-also draws beside a sweep: add --sweep")
    also = load_plan(options.sweep_also) if options.sweep_also is not None else None
    config = configure(options)
    plan = options.plan or Path(config.run.plan)
    options = dataclasses.replace(options, plan=plan)
    workload = workload_for(plan).weighted(config.mix)
    own = load_plan(plan)
    config = with_plan(config, own)
    if also is not None:
        with_plan(config, also)  # a --config at odds with its pooling: exit 2 before any load
    out = options.reports / "load"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("round*"):  # a longer run before this one
        shutil.rmtree(stale, ignore_errors=True)
    with environment_for(options, config, plan=plan, progress=progress) as env:
        if also is not None and env.reconfigure is None:
            raise UsageError(
                "--sweep-also restarts the target's PgBouncers with the other plan's settings: "
                "local servers only (drop --baseline-url/--target-url, or --sweep-also)"
            )
        # Read once, before any load: both sides seeded and reachable, or exit 2 now.
        samples = {a: load_samples(_urls(env, a)[0], workload) for a in ("baseline", "target")}
        outcome = CompareOutcome(
            config=config,
            environment={
                "provider": env.provider,
                "plan": workload.name,
                "connections": env.connections,
            },
            runs={},
            verdicts=[],
        )
        outcome.open_ms = {path: open_ms(url) for path, url in _paths(env) if url is not None}
        for number in range(1, options.repeat + 1):
            views: list[PoolerView] = []
            results: dict[str, RunResult] = {}
            busy: dict[str, float] = {}
            cores: dict[str, float] = {}
            opened: dict[str, int | None] = {}
            spent: dict[str, dict[str, float]] = {}
            for architecture in ("baseline", "target"):  # A B, A B, ...
                servers = [url for url in _urls(env, architecture) if url is not None]
                sessions_before = server_sessions(servers)
                results[architecture] = run_one(
                    env,
                    config,
                    options,
                    architecture=architecture,
                    users=config.run.users,
                    duration=config.run.duration,
                    prefix=round_prefix(out, number=number, architecture=architecture),
                    progress=progress,
                    views=views,
                    cpu=cores,
                    nodes=spent,
                    placed=outcome.placement,
                )
                if results[architecture].requests == 0:
                    # Locust counts its -t from the test's start, and each process reads its
                    # params rows then: on a busy machine that can take a short run whole.
                    raise InfrastructureError(
                        f"the {architecture} completed no request in round {number}'s "
                        f"{config.run.duration} s (Locust's start took the run): nothing to "
                        "judge; raise --duration"
                    )
                # the kernel's 1-minute load average as the run ends: how many processes
                # wanted this machine's cores while it ran (everyone's, not only ours)
                busy[architecture] = os.getloadavg()[0]
                sessions_after = server_sessions(servers)
                opened[architecture] = (
                    None
                    if sessions_before is None or sessions_after is None
                    else sessions_after - sessions_before
                )
            outcome.server_sessions.append(opened)
            outcome.node_cpu.append(spent)
            outcome.rounds.append(results)
            outcome.poolers.append(views)
            outcome.load_average.append(busy)
            outcome.locust_cpu.append(cores)
        outcome.runs = {
            a: pool_rounds([r[a] for r in outcome.rounds]) for a in ("baseline", "target")
        }
        outcome.verdicts = verdicts(config, outcome.rounds)
        if options.sweep:
            shutil.rmtree(out / "sweep", ignore_errors=True)
            for users in config.sweep.instances:
                for architecture in ("baseline", "target"):
                    outcome.sweep.setdefault(architecture, []).append(
                        run_one(
                            env,
                            config,
                            options,
                            architecture=architecture,
                            users=users,
                            duration=config.sweep.duration,
                            prefix=out / "sweep" / f"{architecture}-{users}",
                            progress=progress,
                            spawn_rate=sweep_spawn_rate(config, users=users),
                        )
                    )
        if also is not None:
            _sweep_pooling(env, config, options, also=also, own=own, out=out,
                           outcome=outcome, progress=progress)  # fmt: skip
        if options.reference == "pgbench":
            outcome.pgbench = _pgbench(
                env, config, workload, options, samples=samples, out=out, progress=progress
            )
    return outcome
