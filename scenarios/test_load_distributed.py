"""Locust's master/worker mode on the locustfile: 1 master, 2 workers, on loopback.

The master's counts must be the sum of what both workers did: every order it
counts as placed is a row in the database, and both workers' instances are
seen connected while the run lasts.
"""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path

import psycopg

from harness.load.locust import LocustRun, run_locust
from harness.testing.fix_legacy import LegacyDatabase


def _orders(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def _worker_pids(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    return {m.group(1) for (n,) in names if (m := re.match(r"baseline-instance-(\d+)-", n))}


def test_one_master_two_workers_aggregate_every_request(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    dsn = legacy_database.endpoints.primary
    before = _orders(dsn)
    config = tmp_path / "fast.toml"
    config.write_text("[mix]\nproduct_detail = 1\nplace_order = 1\n")  # the plan's own queries
    run = LocustRun(
        architecture="baseline", writer_url=dsn, reader_url=None, users=6, spawn_rate=6,
        duration=6, seed=3, stop_timeout=5, config=config, workers=2,
    )  # fmt: skip
    seen: set[str] = set()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.2) and len(seen) < 2:
            seen.update(_worker_pids(dsn))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_locust(run, csv_prefix=tmp_path / "dist", progress=lambda _: None)
    finally:
        finished.set()
        watcher.join()
    with open(tmp_path / "dist_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    placed = rows[("write", "place_order")]
    succeeded = int(placed["Request Count"]) - int(placed["Failure Count"])
    assert succeeded > 0
    assert _orders(dsn) - before == succeeded
    total = rows[("", "Aggregated")]
    assert int(total["Request Count"]) == sum(
        int(r["Request Count"]) for key, r in rows.items() if key[1] != "Aggregated"
    )
    assert len(seen) == 2, f"instances seen from worker processes {seen}"
