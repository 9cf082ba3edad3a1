"""``harness load compare``: the plan's success metrics, measured on both architectures.

Everything the user gave is checked first (the config, the parameters, the
plan, the servers' reachability), so bad input ends the command with exit 2
before any load. Then baseline and target run back to back with the same
workload, parameters and seed; optionally the sweep over instance counts and
the pgbench cross-check; and the report goes to ``reports/load/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.load.config import LoadConfig, load_config
from harness.load.environment import (
    LoadEnvironment,
    check_loopback,
    check_reachable,
    local_environment,
)
from harness.load.instance import load_samples
from harness.load.locust import LocustRun, run_locust
from harness.load.results import RunResult, Verdict, read_run, reduction, verdict
from harness.load.workload import Workload, workload_for
from harness.progress import Progress

__all__ = ["CompareOptions", "CompareOutcome", "run_compare"]

REFERENCES = ("pgbench",)


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    config: Path | None = None
    users: int | None = None
    spawn_rate: float | None = None
    duration: int | None = None
    seed: int | None = None
    reports: Path = Path("reports")
    sweep: bool = False
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


@dataclass(kw_only=True)
class CompareOutcome:
    config: LoadConfig
    environment: dict[str, str]
    runs: dict[str, RunResult]
    verdicts: list[Verdict]
    sweep: dict[str, list[RunResult]] = field(default_factory=dict)
    pgbench: dict[str, Any] | None = None

    @property
    def missed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.met]

    @property
    def exit_code(self) -> int:
        return 1 if self.missed else 0


def _configure(options: CompareOptions) -> LoadConfig:
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
def _environment(
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
    ) as env:
        yield env


def _urls(env: LoadEnvironment, architecture: str) -> tuple[str, str | None]:
    if architecture == "baseline":
        return env.baseline_url, None
    return env.target_writer_url, env.target_reader_url


def _run(
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
) -> RunResult:
    writer, reader = _urls(env, architecture)
    for stale in prefix.parent.glob(prefix.name + "_*"):
        stale.unlink()
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
        ),
        csv_prefix=prefix,
        progress=progress,
    )
    result = read_run(prefix, architecture=architecture, users=users)
    progress(
        f"{architecture}: {result.requests} requests, {result.failures} failed "
        f"({result.error_rate:.1%}), p95 {result.p95_ms:.0f} ms"
    )
    return result


def sweep_spawn_rate(config: LoadConfig, *, users: int) -> float:
    """Fast enough that a sweep point has all its instances for 3/4 of its duration.

    At the run's own rate a short point would still be ramping up when it ends
    and would measure fewer instances than it is plotted at.
    """
    return max(config.run.spawn_rate, users / (0.25 * config.sweep.duration))


def verdicts(config: LoadConfig, runs: dict[str, RunResult]) -> list[Verdict]:
    base, target = runs["baseline"], runs["target"]
    return [
        verdict(
            metric="connection pool error rate",
            baseline=base.pool_error_rate,
            target=target.pool_error_rate,
            wanted=config.targets.error_reduction,
            unit="",
        ),
        verdict(
            metric="p95 latency",
            baseline=base.p95_ms,
            target=target.p95_ms,
            wanted=config.targets.p95_reduction,
            unit=" ms",
        ),
    ]


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
        )
    base, target = results["baseline"], results["target"]
    return {
        "baseline": base.to_json(),
        "target": target.to_json(),
        "error_reduction": reduction(base.error_rate, target.error_rate),
        "p95_reduction": reduction(base.p95_ms or 0.0, target.p95_ms or 0.0),
    }


def run_compare(options: CompareOptions, *, progress: Progress) -> CompareOutcome:
    """Check the input, run both architectures (and the sweep, pgbench), return what was found."""
    if options.reference is not None and options.reference not in REFERENCES:
        raise UsageError(
            f"--reference {options.reference!r} is not known; use {', '.join(REFERENCES)}"
        )
    if options.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {options.workers}")
    config = _configure(options)
    plan = options.plan or Path(config.run.plan)
    options = dataclasses.replace(options, plan=plan)
    workload = workload_for(plan).weighted(config.mix)
    out = options.reports / "load"
    out.mkdir(parents=True, exist_ok=True)
    with _environment(options, config, plan=plan, progress=progress) as env:
        # Read once, before any load: both sides seeded and reachable, or exit 2 now.
        samples = {a: load_samples(_urls(env, a)[0], workload) for a in ("baseline", "target")}
        runs = {
            architecture: _run(
                env,
                config,
                options,
                architecture=architecture,
                users=config.run.users,
                duration=config.run.duration,
                prefix=out / architecture,
                progress=progress,
            )
            for architecture in ("baseline", "target")
        }
        outcome = CompareOutcome(
            config=config,
            environment={"provider": env.provider, "plan": workload.name},
            runs=runs,
            verdicts=verdicts(config, runs),
        )
        if options.sweep:
            shutil.rmtree(out / "sweep", ignore_errors=True)
            for users in config.sweep.instances:
                for architecture in ("baseline", "target"):
                    outcome.sweep.setdefault(architecture, []).append(
                        _run(
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
        if options.reference == "pgbench":
            outcome.pgbench = _pgbench(
                env, config, workload, options, samples=samples, out=out, progress=progress
            )
    return outcome
