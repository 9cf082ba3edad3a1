"""``harness load tune`` end to end on local servers, small enough for CI.

Each candidate is really measured: its counts are Locust's own, it ran with the
pool mode it names (as PgBouncer's own SHOW POOLS reported during its run), and
candidates run fewest server connections first.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _aggregated(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


def test_small_tune_measures_candidates_smallest_first(tmp_path: Path) -> None:
    config = tmp_path / "small.toml"
    # 6 instances against 4 connections: the baseline refuses some, so the error
    # target is measurable at this load
    config.write_text("[baseline]\nmax_connections = 4\n[instance]\nlifetime = 2.0\n")
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "load", "tune", "--plan", "plans/as-written",
         "--migrate-with", "plans/kct", "--users", "6", "--duration", "6", "--budget", "36",
         "--config", str(config), "--reports", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=170, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads((tmp_path / "load" / "tune.json").read_text())
    out = tmp_path / "load" / "tune"
    base = _aggregated(out / "baseline_stats.csv")
    assert report["baseline"]["requests"] == int(base["Request Count"]) > 0
    assert report["baseline"]["failures"] == int(base["Failure Count"]) > 0
    assert report["trials"], done.stderr[-2000:]
    seen = 0
    for number, trial in enumerate(report["trials"], start=1):
        total = _aggregated(out / f"candidate{number}_stats.csv")
        assert trial["run"]["requests"] == int(total["Request Count"])
        assert trial["run"]["failures"] == int(total["Failure Count"])
        assert f"{trial['server_connections']} server connections" in done.stdout
        # PgBouncer's own SHOW POOLS says which mode ran (a pool exists once a client used
        # it: a run too short on a busy machine may have reached none)
        writer, reader = trial["pgbouncer"]
        assert writer["pool_mode"] in ("transaction", None)
        assert reader["pool_mode"] in (trial["candidate"]["reader_mode"], None)
        seen += reader["pool_mode"] is not None
    assert seen, report["trials"]
    sizes = [t["server_connections"] for t in report["trials"]]
    assert sizes == sorted(sizes)
    # the page beside it shows the same candidates, one row each
    page = (tmp_path / "load" / "tune.html").read_text()
    assert page.count("<tr>") == 1 + len(report["trials"])
    assert page.count("<svg") == 1
    # the session-mode reader cannot admit 6 instances at its smallest pools: pruned, not run
    assert any("session pooling" in p["reason"] for p in report["pruned"])
    assert all(t["candidate"]["reader_mode"] == "transaction" for t in report["trials"][:1])
    found = [t for t in report["trials"] if t["meets"]]
    assert done.returncode == (0 if found else 1)
    assert (report["snippet"] is not None) == bool(found)
    if found:
        assert "[pgbouncer.reader]" in done.stdout
        assert report["trials"][-1]["meets"]  # the search stops at the first that meets
