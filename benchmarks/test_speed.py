"""Speed targets of issues 2 and 3, measured side by side in one run and printed as ratios.

Run with ``pytest benchmarks/ --benchmark-enable -s``. Nothing here asserts a timing: the
machine is shared and noisy; the printed numbers are the evidence.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from harness.catalog import fingerprint
from harness.cluster import Cluster
from harness.cluster.binaries import find_binaries
from harness.cluster.local import default_base_dir, start_local_cluster
from harness.databases import create_database, drop_database
from harness.gate import run_gate
from harness.legacy import seed
from harness.plan import load_plan
from harness.testing.fix_legacy import fresh_name

HERE = Path(__file__).resolve().parent
ROUNDS = 3


def _report(title: str, rows: list[tuple[str, float]], *, target: str) -> None:
    print(f"\n== {title} (target: {target})")
    for label, seconds in rows:
        print(f"   {label:<48} {seconds * 1000:9.1f} ms")


def _floor_up() -> float:
    """Time the plain shell script up to READY; let it tear down afterwards.

    It runs in the same directory as the harness's clusters (a tmpfs where there is
    one), so that the ratio compares the harness with the raw commands, not two disks.
    """
    started = time.perf_counter()
    with subprocess.Popen(
        ["bash", str(HERE / "cluster_floor.sh"), str(find_binaries().bindir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": default_base_dir()},
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - started
        proc.stdin.close()
        proc.wait(timeout=60)
    assert line.strip() == "READY", "the floor script did not reach READY"
    return elapsed


def _harness_up() -> float:
    started = time.perf_counter()
    cluster = start_local_cluster()
    elapsed = time.perf_counter() - started
    cluster.stop()
    return elapsed


def test_cluster_up_against_the_shell_floor() -> None:
    floor, ours = [], []
    for _ in range(ROUNDS):  # interleaved, so both see the same machine
        floor.append(_floor_up())
        ours.append(_harness_up())
    f, o = statistics.median(floor), statistics.median(ours)
    _report(
        "cluster up: replica streaming, both PgBouncers accepting",
        [("shell script of the raw commands (floor)", f), ("harness start_local_cluster", o)],
        target="at most 1.5x the floor",
    )
    print(f"   ratio harness/floor: {o / f:.2f}x (median of {ROUNDS})")
    assert o > 0
    assert f > 0


@pytest.fixture
def scratch(cluster: Cluster) -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def make() -> str:
        names.append(fresh_name("bench"))
        return names[-1]

    yield make
    for name in names:
        drop_database(cluster.endpoints.primary, name)


def test_scenario_database_from_template(
    benchmark: BenchmarkFixture,
    cluster: Cluster,
    legacy_template_name: str,
    scratch: Callable[[], str],
) -> None:
    def clone() -> None:
        create_database(cluster.endpoints.primary, scratch(), template=legacy_template_name)

    benchmark.pedantic(clone, rounds=10, iterations=1)  # type: ignore[no-untyped-call]
    median = benchmark.stats.stats.median if benchmark.stats else float("nan")
    _report(
        "fresh scenario database from the template", [("CREATE DATABASE … TEMPLATE", median)],
        target="at most 150 ms",
    )  # fmt: skip


@pytest.mark.parametrize("scale", [1, 100])
def test_seeding(cluster: Cluster, scratch: Callable[[], str], scale: int) -> None:
    dsn = create_database(cluster.endpoints.primary, scratch())
    report = seed(dsn, scale=scale)
    _report(
        f"seeding the legacy database at scale {scale}",
        [(f"{report.total_rows:,} rows", report.seconds)],
        target="at most 1 s" if scale == 1 else "at most 60 s",
    )
    assert report.rows["customers"] == 3369 * scale
    if scale == 100:
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.perf_counter()
            fp = fingerprint(conn)
            took = time.perf_counter() - started
        rows = sum(t.rows or 0 for t in fp.tables.values())
        _report(
            "fingerprint at scale 100", [(f"{rows:,} rows, {len(fp.tables)} tables", took)],
            target="at most 5 s",
        )  # fmt: skip


def test_gate_on_the_corrected_plan() -> None:
    plan = load_plan(HERE.parent / "plans" / "kct")
    report = run_gate(plan)
    _report(
        "harness gate --plan plans/kct at scale 1",
        [("cluster up, seed, backup, migrate, verify, rollback, …", report.seconds)],
        target="at most 30 s",
    )
    assert report.safe
