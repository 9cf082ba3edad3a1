"""The Locust session runs against a real cluster: bounded, on loopback, by itself.

Locust patches its process with gevent, so it runs in a process of its own, never
inside this pytest process that uses threads and psycopg.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.testing.fix_legacy import LegacyDatabase

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"


@pytest.mark.parametrize("routing", ["split", "writer"])
def test_locust_session_runs_without_failures(
    legacy_database: LegacyDatabase, tmp_path: Path, routing: str
) -> None:
    env = {
        **os.environ,
        "PGCUTOVER_LOAD_ARCH": "target",
        "DATABASE_URL": legacy_database.endpoints.writer,
        "DATABASE_READONLY_URL": legacy_database.endpoints.reader,
        "PGCUTOVER_ROUTING": routing,
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", "5", "-r", "5", "-t", "3s", "--stop-timeout", "5",
            "--csv", str(tmp_path / "run"), "--only-summary",
        ],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "run_stats.csv", newline="") as f:
        stats = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    # the plan's own [workload]: reads and writes by its query names, none failing
    ran = {kind for (kind, name), row in stats.items() if name != "Aggregated"}
    assert ran == {"read", "write"}, sorted(stats)
    assert ("read", "product_detail") in stats, sorted(stats)
    total = stats[("", "Aggregated")]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, total
