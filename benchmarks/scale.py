"""The gate at growing scales next to the raw floor of the same database, in one run.

    python benchmarks/scale.py                      # scales 1, 10 and 100
    python benchmarks/scale.py --scales 1,100,1000  # 1000 is about 36 M rows and 8 GB
    python benchmarks/scale.py --scales 100 --clone # and the gate on a copy of a server

Each gate's gate.json and gate.log stay in reports/scale/scale-N/ (``--reports``).

For each scale it measures, one after the other:

* the raw floor: what a person with the PostgreSQL tools alone would pay for the
  same database: seeding it, ``pg_dump -Fc`` and ``pg_restore`` of the dump;
* ``harness gate --plan PLAN --scale N`` as a user runs it (traffic on unless
  ``--no-traffic``), with its peak memory (the largest process) and its peak disk
  (the cluster's directory and the backup's, sampled every half second);

and prints them side by side with their ratio, then each gate's phase table from
its ``gate.json``. Not part of CI: at scale 100 it takes minutes, at 1000 most of
an hour. Nothing here asserts a time: the numbers are the evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.cluster.binaries import find_binaries
from harness.cluster.local import default_base_dir, start_local_cluster
from harness.databases import create_database
from harness.dsn import child_env
from harness.errors import UsageError
from harness.legacy import seed
from harness.legacy.capacity import check_gate_room
from harness.progress import Progress
from harness.runner.backup import restore_jobs
from harness.testing.clone_source import (
    make_copyable,
    seeded_source,
    source_state,
    wait_until_quiet,
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Floor:
    seed: float
    dump: float
    restore: float
    dump_bytes: int

    @property
    def total(self) -> float:
        return self.seed + self.dump + self.restore


@dataclass
class GateRun:
    seconds: float
    exit_code: int
    peak_rss_mb: float
    peak_disk_mb: float
    phases: list[dict[str, object]] = field(default_factory=list)


def _timed(argv: list[str], *, dsn: str) -> float:
    conninfo, env = child_env(dsn)
    started = time.perf_counter()
    subprocess.run([conninfo if a == dsn else a for a in argv], env=env, check=True)
    return time.perf_counter() - started


def raw_floor(scale: int, *, say: Progress) -> Floor:
    """Seed, dump and restore the same database on a cluster of its own."""
    bins = find_binaries()
    cluster = start_local_cluster(dbname="floor")
    try:
        primary = cluster.endpoints.primary
        seeded = seed(primary, scale=scale).seconds
        say(f"  floor: seeded in {seeded:.1f} s")
        with tempfile.TemporaryDirectory(prefix="pgcutover-floor-") as scratch:
            dump = Path(scratch) / "floor.dump"
            argv = [bins.path("pg_dump"), "-Fc", "-f", str(dump), "-d", primary]
            dumped = _timed(argv, dsn=primary)
            say(f"  floor: pg_dump -Fc in {dumped:.1f} s ({dump.stat().st_size / 1e6:.0f} MB)")
            target = create_database(primary, "floor_restored")
            restored = _timed(
                [bins.path("pg_restore"), "-j", str(restore_jobs()), "-d", target, str(dump)],
                dsn=target,
            )
            say(f"  floor: pg_restore -j {restore_jobs()} in {restored:.1f} s")
            return Floor(seeded, dumped, restored, dump.stat().st_size)
    finally:
        cluster.stop()


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@contextmanager
def _disk_peak(roots: list[Path]) -> Iterator[list[int]]:
    """The peak of the bytes under directories that appear in ``roots`` while inside."""
    before = {r: set(os.listdir(r)) for r in roots}
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            now = 0
            for root in roots:
                for name in set(os.listdir(root)) - before[root]:
                    if name.startswith("pgcutover-"):
                        now += _size(root / name)
            peak[0] = max(peak[0], now)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def gate(source: list[str], *, plan: Path, traffic: bool, reports: Path) -> GateRun:
    """``harness gate`` on the database ``source`` names (``--scale N`` or ``--clone-from``);
    its report and log are kept in ``reports``, to read a check's outcome afterwards."""
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "gate.json").unlink(missing_ok=True)  # an earlier run's, not this one's
    argv = [sys.executable, "-m", "harness.cli", "gate", "--plan", str(plan),
            *source, "--reports", str(reports)]  # fmt: skip
    if not traffic:
        argv.append("--no-traffic")
    roots = sorted({Path(default_base_dir()), Path(tempfile.gettempdir())})
    with _disk_peak(roots) as peak:
        started = time.perf_counter()
        with (reports / "gate.log").open("w") as log:
            done = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=log, check=False)
        seconds = time.perf_counter() - started
    # Linux: ru_maxrss in KiB, the largest of the processes waited for (servers included).
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode not in (0, 1):
        tail = (reports / "gate.log").read_text().splitlines()[-15:]
        print("\n".join(["  the gate could not run; its last lines:", *tail]))
    report = reports / "gate.json"
    phases = json.loads(report.read_text()).get("phases", []) if report.exists() else []
    return GateRun(seconds, done.returncode, rss, peak[0] / 1e6, phases)


@dataclass
class CloneRun:
    run: GateRun
    source_unchanged: bool


def clone_gate(scale: int, *, plan: Path, traffic: bool, reports: Path, say: Progress) -> CloneRun:
    """The gate on a physical copy of a separately started server holding the same
    database: its streaming replica is copied, and must be left exactly as it was."""
    started = time.perf_counter()
    with seeded_source(scale=scale) as cluster:
        primary, replica = cluster.endpoints.primary, cluster.endpoints.replica
        assert replica is not None
        make_copyable(cluster)
        ready = time.perf_counter() - started
        say(f"  clone: source seeded and made ready to copy in {ready:.1f} s")
        wait_until_quiet(primary, replica)
        before = source_state(primary, replica)
        run = gate(["--clone-from", replica], plan=plan, traffic=traffic, reports=reports)
        after = source_state(primary, replica)
        unchanged = after == before
        say(f"  clone: gate exit {run.exit_code} in {run.seconds:.1f} s; source unchanged "
            f"(pg_dump and WAL positions): {'yes' if unchanged else 'NO'}")  # fmt: skip
        if not unchanged:
            say(f"  clone: the same dump: {after[0] == before[0]}; WAL positions (primary "
                f"inserted, written; replica replayed) {before[1]} -> {after[1]}")  # fmt: skip
        return CloneRun(run, unchanged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10,100", help="comma-separated (default 1,10,100)")
    parser.add_argument("--plan", type=Path, default=ROOT / "plans" / "kct")
    parser.add_argument("--no-traffic", action="store_true")
    parser.add_argument(
        "--reports",
        type=Path,
        default=ROOT / "reports" / "scale",
        help="each gate's gate.json and gate.log go in scale-N/ here (default reports/scale)",
    )
    parser.add_argument(
        "--clone",
        action="store_true",
        help="also gate a --clone-from copy of a separately started server at each scale",
    )
    args = parser.parse_args(argv)
    try:
        scales = [int(s) for s in args.scales.split(",")]
    except ValueError:
        parser.error(f"--scales takes whole numbers separated by commas, not {args.scales!r}")
    if any(s < 1 for s in scales):
        parser.error(f"each scale must be 1 or more; got {args.scales}")
    for scale in scales:  # the gate would refuse it too, but only after the raw floor ran
        try:
            check_gate_room(provider="local", scale=scale, legacy=None)
        except UsageError as exc:
            parser.error(str(exc))
    say = print
    load = os.getloadavg()[0]
    say(f"{os.cpu_count()} cores, load average {load:.1f} at the start (a shared machine is noisy)")
    rows = []
    clones: dict[int, CloneRun] = {}
    for scale in scales:
        say(f"scale {scale}: raw floor")
        floor = raw_floor(scale, say=say)
        say(f"scale {scale}: harness gate")
        run = gate(
            ["--scale", str(scale)],
            plan=args.plan,
            traffic=not args.no_traffic,
            reports=args.reports / f"scale-{scale}",
        )
        say(f"  gate: exit {run.exit_code} in {run.seconds:.1f} s")
        rows.append((scale, floor, run))
        if args.clone:
            say(f"scale {scale}: harness gate --clone-from a server of its own")
            clones[scale] = clone_gate(
                scale,
                plan=args.plan,
                traffic=not args.no_traffic,
                reports=args.reports / f"scale-{scale}-clone",
                say=say,
            )
    say("")
    say("scale   gate s  floor s (seed+dump+restore)   ratio  peak RSS MB  peak disk MB  exit")
    for scale, floor, run in rows:
        parts = f"{floor.seed:.1f}+{floor.dump:.1f}+{floor.restore:.1f}"
        say(
            f"{scale:>5} {run.seconds:>8.1f} {floor.total:>8.1f} ({parts:<20}) "
            f"{run.seconds / floor.total:>6.2f} {run.peak_rss_mb:>12.0f} {run.peak_disk_mb:>13.0f}"
            f"  {run.exit_code}"
        )
    if clones:
        say("")
        say("scale  load s   gate s | copy s  gate --clone-from s  source unchanged")
        for scale, _, run in rows:
            clone = clones[scale]
            say(
                f"{scale:>5} {_phase(run, 'load'):>7.1f} {run.seconds:>8.1f} | "
                f"{_phase(clone.run, 'clone'):>6.1f} {clone.run.seconds:>20.1f}  "
                f"{'yes' if clone.source_unchanged else 'NO'}"
            )
    timed = [(f"scale {scale}", run) for scale, _, run in rows]
    timed += [(f"scale {scale}, --clone-from", c.run) for scale, c in clones.items()]
    for name, run in timed:
        say(f"\n{name}: where the gate's time went")
        for phase in run.phases:
            if phase.get("kind") == "check" and float(str(phase.get("seconds", 0))) < 0.5:
                continue
            rate = phase.get("rows_per_second")
            extra = f"  {rate:,.0f} rows/s" if isinstance(rate, float) else ""
            mbps = phase.get("mb_per_second")
            extra += f"  {mbps} MB/s" if mbps is not None else ""
            say(f"  {phase.get('kind', ''):<6} {phase.get('name', '')!s:<48} "
                f"{float(str(phase.get('seconds', 0))):>8.2f} s{extra}")  # fmt: skip
    return 0


def _phase(run: GateRun, name: str) -> float:
    return sum(float(str(p.get("seconds", 0))) for p in run.phases if p.get("name") == name)


if __name__ == "__main__":
    sys.exit(main())
