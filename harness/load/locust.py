"""Running Locust on the locustfile, in processes of its own, bounded and interruptible.

Locust patches its process with gevent on import, which breaks the threads and
psycopg pools of the process that imports it, so it only ever runs as a child
process here: one headless process, or a master with workers on loopback. Each
run is bounded by Locust's ``-t`` and a hard timeout above it; Ctrl-C or the
timeout stops every child (Locust first, gracefully, then for good).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.cluster.processes import free_port
from harness.errors import InfrastructureError
from harness.load.config import TargetSettings
from harness.load.pinning import pin_tree
from harness.progress import Progress

__all__ = ["LOCUSTFILE", "LocustRun", "run_locust"]

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
#: seconds a run may take beyond its duration and stop timeout (start-up, CSV writing)
SLACK = 60.0


@dataclass(frozen=True, kw_only=True)
class LocustRun:
    """What to run: one architecture, its URLs, and Locust's own numbers."""

    architecture: str
    writer_url: str
    reader_url: str | None
    users: int
    spawn_rate: float
    duration: int
    seed: int
    stop_timeout: int
    config: Path | None = None
    #: the plan whose ``[workload]`` runs (None: the config's ``[run] plan``)
    plan: Path | None = None
    #: 0: one process runs the users; N: a master and N workers on loopback
    workers: int = 0
    #: the cores Locust's processes run on (None: any)
    cores: tuple[int, ...] | None = None
    #: count only what runs once every instance has started (Locust's --reset-stats)
    after_start: bool = False
    #: the pools the target's instances open and the PgBouncer numbers they are judged
    #: against (None: the config's and the plan's, as the locustfile reads them)
    target: TargetSettings | None = None

    def environ(self, *, latencies: Path | None = None, loop: Path | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_READONLY_URL",
                "PGCUTOVER_ROUTING",
                "PGCUTOVER_LOAD_CONFIG",
                "PGCUTOVER_LOAD_PLAN",
                "PGCUTOVER_LOAD_WORKERS",
                "PGCUTOVER_LOAD_AFTER_START",
                "PGCUTOVER_LOAD_LOOP",
                "PGCUTOVER_LOAD_TARGET",
            }
        }
        env.update(
            PGCUTOVER_LOAD_ARCH=self.architecture,
            PGCUTOVER_LOAD_SEED=str(self.seed),
            DATABASE_URL=self.writer_url,
        )
        if self.reader_url:
            env["DATABASE_READONLY_URL"] = self.reader_url
        if self.config is not None:
            env["PGCUTOVER_LOAD_CONFIG"] = str(self.config)
        if self.plan is not None:
            env["PGCUTOVER_LOAD_PLAN"] = str(self.plan.resolve())
        if latencies is not None:
            env["PGCUTOVER_LOAD_LATENCIES"] = str(latencies)
        if loop is not None:
            env["PGCUTOVER_LOAD_LOOP"] = str(loop)
        if self.after_start:
            env["PGCUTOVER_LOAD_AFTER_START"] = "1"
        if self.target is not None:
            env["PGCUTOVER_LOAD_TARGET"] = json.dumps(dataclasses.asdict(self.target))
        # Each worker process keeps its own request budget: it gets its share of the cap.
        env["PGCUTOVER_LOAD_WORKERS"] = str(max(1, self.workers))
        return env


def _stop(procs: list[subprocess.Popen[bytes]], *, grace: float = 15.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it may end meanwhile
                os.killpg(proc.pid, signal.SIGTERM)  # Locust quits cleanly, writes its CSVs
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tail(path: Path, *, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


def run_locust(run: LocustRun, *, csv_prefix: Path, progress: Progress) -> None:
    """Run ``run`` to its end; Locust's CSVs land at ``csv_prefix``_*.csv."""
    csv_prefix.parent.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    timing = [
        "--headless", "-u", str(run.users), "-r", str(run.spawn_rate), "-t", f"{run.duration}s",
        "--stop-timeout", str(run.stop_timeout), "--csv", str(csv_prefix), "--only-summary",
        *(["--reset-stats"] if run.after_start else []),
    ]  # fmt: skip
    commands: list[tuple[str, list[str]]]
    if run.workers == 0:
        commands = [("locust", base + timing)]
    else:
        port = free_port()
        master = [
            *base, *timing, "--master", "--expect-workers", str(run.workers),
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        ]  # fmt: skip
        worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        commands = [("master", master)] + [(f"worker{i}", worker) for i in range(run.workers)]
    env = run.environ(
        latencies=csv_prefix.with_name(csv_prefix.name + "_succeeded_ms"),
        loop=csv_prefix.with_name(csv_prefix.name + "_loop_late_ms"),
    )
    logs = [csv_prefix.with_name(f"{csv_prefix.name}_{name}.log") for name, _ in commands]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for log, (_, argv) in zip(logs, commands, strict=True):
            with log.open("wb") as out:
                # A session of its own: Ctrl-C reaches us, and we stop Locust in order.
                procs.append(
                    subprocess.Popen(
                        argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
            if run.cores is not None:
                pin_tree(procs[-1].pid, run.cores)
        progress(
            f"{run.architecture}: {run.users} instances for {run.duration} s"
            + (f" (1 master, {run.workers} workers)" if run.workers else "")
        )
        try:
            procs[0].wait(timeout=run.duration + run.stop_timeout + SLACK)
        except subprocess.TimeoutExpired:
            raise InfrastructureError(
                f"Locust's {run.architecture} run did not end {SLACK:.0f} s after its "
                f"{run.duration} s; it was stopped. Its last output:\n{_tail(logs[0])}"
            ) from None
    finally:
        _stop(procs)
    if not csv_prefix.with_name(csv_prefix.name + "_stats.csv").exists():
        raise InfrastructureError(
            f"Locust's {run.architecture} run wrote no statistics (exit code "
            f"{procs[0].returncode}); its last output:\n{_tail(logs[0])}"
        )
