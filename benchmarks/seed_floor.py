"""Seeding next to what this machine can do at best, in one run.

    python benchmarks/seed_floor.py               # scale 100
    python benchmarks/seed_floor.py --scale 10

A load is work for the cores: Python formats the rows, the servers parse them, build
the keys and indexes, and the replica replays it all. No schedule finishes before the
cores have done that work, so the bound below is what any loader of these rows, on
this schema and these cores, needs at least. Measured one after the other on one
cluster (a primary and its streaming replica, as the gate seeds):

* ``harness seed``: its time, and the CPU seconds of the harness's process and of
  each server (their process trees, from ``/proc``);
* the generator alone: every row formatted as COPY text and sent nowhere;
* the servers alone: the same database put in from rows already formatted,
  ``pg_restore -j`` of its uncompressed directory dump, with the servers' CPU seconds.

The bound is (the generator's CPU + the servers' CPU of that restore) / cores: less
than seeding needs (a restore neither vacuums nor checkpoints). Nothing here asserts
a time; the numbers are the evidence.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.cluster.binaries import find_binaries
from harness.cluster.local import LocalCluster, start_local_cluster
from harness.databases import create_database
from harness.dsn import child_env
from harness.legacy import seed
from harness.legacy.data import generate
from harness.load.cpu import cpu_seconds
from harness.runner.backup import restore_jobs


def _servers(cluster: LocalCluster) -> dict[str, int]:
    return {
        name: server.pid
        for name, server in (("primary", cluster.primary), ("replica", cluster.replica))
        if server is not None
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def _run(argv: list[str], *, dsn: str) -> None:
    conninfo, env = child_env(dsn)
    subprocess.run([conninfo if a == dsn else a for a in argv], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--target", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error(f"--scale must be 1 or more, not {args.scale}")
    cores = os.cpu_count() or 1
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start")
    bins = find_binaries()
    cluster = start_local_cluster(dbname="floor")
    try:
        primary = cluster.endpoints.primary
        nodes = _servers(cluster)

        servers, own, started = cpu_seconds(nodes), _own_cpu(), time.perf_counter()
        seeded = seed(primary, scale=args.scale)
        seed_wall = time.perf_counter() - started
        seed_own, seed_servers = _own_cpu() - own, _spent(servers, cpu_seconds(nodes))
        print(f"harness seed: {seed_wall:.1f} s; CPU harness {seed_own:.1f} s, "
              + ", ".join(f"{n} {s:.1f} s" for n, s in seed_servers.items()))  # fmt: skip

        own, started = _own_cpu(), time.perf_counter()
        formatted = 0
        for table in generate(scale=args.scale):
            formatted += sum(len(chunk.encode()) for chunk in table.chunks)
        generator_wall, generator_cpu = time.perf_counter() - started, _own_cpu() - own
        print(f"the generator alone: {generator_wall:.1f} s, CPU {generator_cpu:.1f} s "
              f"({formatted / 1e6:.0f} MB of COPY text, {seeded.total_rows:,} rows)")  # fmt: skip

        jobs = str(restore_jobs())
        with tempfile.TemporaryDirectory(prefix="pgcutover-seed-floor-") as scratch:
            dump = Path(scratch) / "dump"
            _run([bins.path("pg_dump"), "-Fd", "-Z", "0", "-j", jobs, "-f", str(dump),
                  "-d", primary], dsn=primary)  # fmt: skip
            target = create_database(primary, "floor_restored")
            servers, started = cpu_seconds(nodes), time.perf_counter()
            _run([bins.path("pg_restore"), "-j", jobs, "-d", target, str(dump)], dsn=target)
            restore_wall = time.perf_counter() - started
            restore_servers = _spent(servers, cpu_seconds(nodes))
        print(f"the servers alone (pg_restore -j {jobs} of the same rows): {restore_wall:.1f} s; "
              + ", ".join(f"{n} CPU {s:.1f} s" for n, s in restore_servers.items()))  # fmt: skip

        bound = (generator_cpu + sum(restore_servers.values())) / cores
        print(
            f"\nlower bound for seeding on {cores} cores: ({generator_cpu:.1f} + "
            f"{sum(restore_servers.values()):.1f}) CPU s / {cores} = {bound:.1f} s; "
            f"harness seed {seed_wall:.1f} s ({seed_wall / bound:.2f}x the bound); "
            f"target {args.target:.0f} s: "
            + ("within reach" if bound <= args.target else "below this machine's bound")
        )
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
