"""``harness load compare`` end to end on local servers, small enough for CI.

The baseline is given fewer connections than instances so that it really
refuses some; the report's counts must then be Locust's own, kind by kind.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.cluster.pooling import DEFAULT_POOLERS
from harness.cluster.processes import free_port
from harness.load.results import percentile
from harness.load.workload import workload_for
from harness.plan import load_plan
from harness.report.schema import parse_load

ROOT = Path(__file__).resolve().parent.parent


def _aggregated(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


def _failures(path: Path) -> int:
    with path.open(newline="") as f:
        return sum(int(r["Occurrences"]) for r in csv.DictReader(f))


def test_small_compare_reports_locusts_own_counts(tmp_path: Path) -> None:
    config = tmp_path / "small.toml"
    # 12 instances against 8 connections: the baseline must refuse some (53300).
    # A two-point sweep of the plan's pooling and of the plan as written's beside it.
    config.write_text(
        "[baseline]\nmax_connections = 8\n[instance]\nlifetime = 2.0\n"
        "[sweep]\ninstances = [4, 12]\nduration = 3\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "load", "compare", "--users", "12",
         "--spawn-rate", "12", "--duration", "5", "--repeat", "2", "--config", str(config),
         "--sweep", "--sweep-also", "plans/as-written", "--reports", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=170, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode in (0, 1, 3), done.stderr[-3000:]
    out = tmp_path / "load"
    report = json.loads((out / "summary.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for name in ("baseline", "target"):
        pooled = report["architectures"][name]
        for entry in report["rounds"]:
            run = entry["architectures"][name]
            stats = out / entry["files"][name]
            total = _aggregated(stats)
            assert run["requests"] == int(total["Request Count"]) > 0
            assert run["failures"] == int(total["Failure Count"])
            assert run["failures"] == _failures(stats.with_name(f"{name}_failures.csv"))
            assert sum(run["errors_by_kind"].values()) == run["failures"]
            assert run["p95_ms"] == float(total["95%"])
            # Locust rounds its percentiles (to 2 significant digits), not its maximum
            assert 0 <= run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"] * 1.05 + 1
        # the pooled counts are the rounds' own, added up
        for key in ("requests", "failures", "pool_errors"):
            assert pooled[key] == sum(e["architectures"][name][key] for e in report["rounds"])
    baseline = report["architectures"]["baseline"]
    assert baseline["errors_by_kind"]["server_refused"] > 0, baseline
    # every instance ran: none was lost before its first request
    assert max(p["users"] for p in baseline["history"]) == 12
    statuses = {t["status"] for t in report["targets"]}
    expected = 1 if "missed" in statuses else (0 if report["met"] else 3)
    assert done.returncode == report["exit_code"] == expected
    for target in report["targets"]:
        assert f"{target['status'].upper()} {target['reason']}" in done.stdout
    assert [t["metric"] for t in report["targets"]] == [
        "connection pool error rate",
        "p95 latency of successful requests",
    ]
    # PgBouncer's own view of the target was sampled in each round, from both consoles
    for entry in report["rounds"]:
        assert len(entry["pgbouncer"]) == 2
    # a busy machine may time a console out once; PgBouncer's view must be there
    views = [v for e in report["rounds"] for v in e["pgbouncer"]]
    assert sum(v["samples"] >= 1 and v["error"] is None for v in views) >= 2, views
    # per transaction over the run, from SHOW STATS' totals: a transaction holds its queries
    for view in views:
        avg = view["averages_ms"]
        if "avg_xact_time" in avg and "avg_query_time" in avg:
            assert 0 <= avg["avg_query_time"] <= avg["avg_xact_time"] + 0.01, avg
    # the capacity text says the pool mode each PgBouncer of the run used
    poolers = load_plan(ROOT / "plans" / "kct").pgbouncer or DEFAULT_POOLERS
    for bouncer in poolers.both:
        assert f"{bouncer.role}: {bouncer.pool_mode} pooling" in " ".join(report["pooling"])
    assert report["closing_note"].startswith("At 12 concurrent instances for 5 s")
    # both sides paid for TLS and SCRAM (the shipped [network]), measured on each path
    assert report["environment"]["connections"].startswith("TLS (sslmode=require) and SCRAM")
    opened = report["connections"]["open_ms"]
    assert set(opened) == {"baseline, direct", "target, writer", "target, reader"}
    assert all(ms is not None and ms > 0 for ms in opened.values()), opened
    # the baseline instances opened server connections of their own; counted per round
    sessions = report["connections"]["server_sessions"]
    assert len(sessions) == 2
    assert all(r["baseline"] > 0 for r in sessions), sessions
    assert "Server connections the instances' load opened" in report["closing_note"]
    # what shared the cores: each node's CPU per request, in every round
    for entry in report["cpu_ms_per_request"]:
        assert set(entry["baseline"]) == {"primary", "Locust"}
        assert set(entry["target"]) == {
            "primary", "replica", "PgBouncer writer", "PgBouncer reader", "Locust"
        }  # fmt: skip
        assert entry["baseline"]["primary"] > 0
        assert entry["target"]["Locust"] > 0
    # three capacity curves on one plot: the seed's pooling beside the corrected one's,
    # each point Locust's own count
    sweep = report["sweep"]
    also = "target, as-written's pooling"
    assert list(sweep["results"]) == ["baseline", "target", also]
    for name, prefix in (("baseline", "baseline"), ("target", "target"), (also, "also")):
        points = sweep["results"][name]
        assert [p["users"] for p in points] == [4, 12]
        for point in points:
            stats = out / "sweep" / f"{prefix}-{point['users']}_stats.csv"
            assert point["requests"] == int(_aggregated(stats)["Request Count"]) > 0
    # the seed's reader pools sessions, and its curve says so
    assert "reader: session pooling" in " ".join(sweep["pooling"][also])
    assert f"Sweep: the {also}: " in report["closing_note"]
    page = (out / "report.html").read_text()
    assert also in page
    # where each process ran: Locust apart from the servers (the shipped [machine]), and both
    # sides' database nodes on the same cores
    placed = report["cpu_placement"]
    if len(os.sched_getaffinity(0)) > 1:
        for side in ("baseline", "target"):
            servers = {tuple(c) for n, c in placed[side].items() if n != "Locust"}
            assert not set(placed[side]["Locust"]) & set().union(*servers), placed
        assert placed["baseline"]["primary"] == placed["target"]["primary"], placed
        assert "CPU placement, target:" in report["closing_note"]
    # the load generator's own loop was watched on each side, in every round
    for entry in report["rounds"]:
        for name in ("baseline", "target"):
            run = entry["architectures"][name]
            assert 0 <= run["loop_late_p95_ms"] <= run["loop_late_max_ms"], run
            assert 0 <= run["loop_late_share"] < 1, run
            # its whole record (for the projection), the same watch's wake-ups
            assert run["loop_wait"]["wake_ups"] > 0, run
            assert sum(n for _, n in run["loop_wait"]["late"]) <= run["loop_wait"]["wake_ups"]
            # the times after the last instance started: the last of the successful ones
            folder = (out / entry["files"][name]).parent
            every, started = (
                [t for f in folder.glob(f"{name}_{what}.*.json") for t in json.loads(f.read_text())]
                for what in ("succeeded_ms", "succeeded_ms_started")
            )
            assert 0 < len(started) <= len(every), run
            assert run["started_p95_ms"] == percentile(sorted(started), 0.95), run
            # every instance's first request that succeeded, timed apart too
            cold = [t for f in folder.glob(f"{name}_succeeded_ms_cold.*.json")
                    for t in json.loads(f.read_text())]  # fmt: skip
            assert run["cold_starts"] == len(cold) > 0, run
            assert set(cold) <= set(every)
    # the separate-machines projection is made of these rounds' numbers, and says it is one
    projection = report["projection"]
    assert projection is not None
    assert "not a measurement" in projection["label"]
    # fitted and checked on the running fleet's p95, every round having recorded it
    assert projection["validation"]["window"] == "once every instance had started"
    started = [r["architectures"]["target"]["started_p95_ms"] for r in report["rounds"]]
    assert projection["sides"]["target"]["measured_p95_ms"] == pytest.approx(
        sum(started) / len(started)
    )
    assert "PROJECTION for separate machines" in report["closing_note"]
    assert (out / "report.html").read_text().count("<svg") >= 2
    # the plan's own [workload] ran on both sides, by its query names
    queries = {f"{op.kind} {op.name}" for op in workload_for(ROOT / "plans" / "kct").operations}
    for name in ("baseline", "target"):
        ran = set(report["architectures"][name]["by_operation"])
        assert ran, name
        assert ran <= queries, ran - queries
    # the report page reads the same summary: `harness report` shows the comparison
    load = parse_load(report)
    assert [(r.name, r.requests) for r in load.runs] == [
        (name, report["architectures"][name]["requests"]) for name in ("baseline", "target")
    ]
    assert all(r.timeline for r in load.runs)
    gate = {"plan": "kct", "verdict": "safe", "failed": [], "seconds": 1.0, "checks": []}
    (tmp_path / "gate.json").write_text(json.dumps(gate))
    assert main(["report", "--reports", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert '<h2 id="load">Load comparison: baseline vs target, plan kct' in page
    assert "is not shown" not in page


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--users", "0"], "must be at least 1"),
        (["--duration", "100000"], "max_duration"),
        (["--reference", "sysbench"], "invalid choice"),
        (["--plan", "plans/absent"], "absent"),
        (["--legacy", "plans/absent/legacy.sql"], "--legacy plans/absent/legacy.sql: no such file"),
        (["--baseline-url", "postgresql://postgres@127.0.0.1:1/x"], "go together"),
        (
            ["--baseline-url", "postgresql://u@db.example.com/x", "--target-url", "host=10.0.0.5"],
            "not on this machine (host 'db.example.com')",
        ),
    ],
)
def test_bad_input_exits_2_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    try:
        code = main(["load", "compare", "--reports", str(tmp_path), *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = int(str(exc.code))
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "load" / "round1").exists()


def test_unknown_config_key_and_unreachable_servers_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[baseline]\nmax_conections = 50\n")
    assert main(["load", "compare", "--config", str(bad), "--reports", str(tmp_path)]) == 2
    assert "unknown key max_conections in [baseline]" in capsys.readouterr().err
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/kct"
    code = main(["load", "compare", "--baseline-url", closed, "--target-url", closed,
                 "--reports", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "baseline (--baseline-url)" in capsys.readouterr().err
    assert not (tmp_path / "load" / "round1").exists()


def test_locust_refuses_an_unknown_architecture_before_any_load() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
         "--headless", "-u", "1", "-t", "1s"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PGCUTOVER_LOAD_ARCH": "blue-green",
             "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/kct"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "PGCUTOVER_LOAD_ARCH='blue-green' is not an architecture" in done.stderr
