"""The report reads Locust's CSVs faithfully and says the outcome, whatever it is."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import InfrastructureError, UsageError
from harness.load.compare import CompareOutcome, round_prefix, verdicts
from harness.load.confidence import INCONCLUSIVE_EXIT, interval, t_quantile
from harness.load.config import load_config
from harness.load.explain import cold_start_lines, loop_lines, startup_lines
from harness.load.projection import projection_lines
from harness.load.report import break_point, build_report, write_report
from harness.load.results import KINDS, RunResult, kind_of, pool_rounds, read_run, verdict
from harness.load.workload import Operation, workload_for

PLAN = Path(__file__).resolve().parents[1] / "plans" / "kct"

STATS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
         "Average Response Time", "Min Response Time", "Max Response Time",
         "Average Content Size", "Requests/s", "Failures/s", "50%", "66%", "75%", "80%",
         "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]  # fmt: skip
HISTORY = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%",
           "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
           "Total Request Count", "Total Failure Count"]  # fmt: skip


def write_locust_csvs(prefix: Path, *, requests: int, failures: dict[str, int], p95: float) -> None:
    """CSVs shaped as Locust 2 writes them (the columns the report reads)."""
    failed = sum(failures.values())
    with open(f"{prefix}_stats.csv", "w", newline="") as f:
        w = csv.DictWriter(f, STATS, restval="0")
        w.writeheader()
        w.writerow(
            {
                "Type": "read",
                "Name": "product with variants",
                "Request Count": requests,
                "Failure Count": failed,
                "95%": p95,
            }
        )
        w.writerow({"Type": "", "Name": "Aggregated", "Request Count": requests,
                    "Failure Count": failed, "50%": p95 / 4, "95%": p95, "99%": p95 * 2,
                    "Max Response Time": p95 * 3, "Requests/s": requests / 10})  # fmt: skip
    with open(f"{prefix}_failures.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["Method", "Name", "Error", "Occurrences"])
        for kind, count in failures.items():
            if count:
                rows.writerow(["read", "product with variants", f"{kind}: SomeError", count])
    with open(f"{prefix}_stats_history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, HISTORY, restval="N/A")
        w.writeheader()
        for second in range(3):
            w.writerow({"Timestamp": 1000 + second, "User Count": 5, "Name": "Aggregated",
                        "Requests/s": "10.0", "Failures/s": "1.0",
                        "95%": "N/A" if second == 0 else p95})  # fmt: skip


def _outcome(
    tmp_path: Path, base_errors: int, target_errors: int, *, rounds: int = 3
) -> CompareOutcome:
    """Rounds of CSVs whose errors wobble by one around the given counts."""
    config = load_config().with_run(users=5, duration=10)
    measured = []
    for number in range(1, rounds + 1):
        wobble = number % 2
        results = {}
        for name, errors, p95 in (
            ("baseline", base_errors + wobble, 100.0 + wobble),
            ("target", target_errors + wobble, 60.0 - wobble),
        ):
            prefix = round_prefix(tmp_path, number=number, architecture=name)
            prefix.parent.mkdir(parents=True, exist_ok=True)
            write_locust_csvs(prefix, requests=1000, failures={"server_refused": errors}, p95=p95)
            results[name] = read_run(prefix, architecture=name, users=5)
        measured.append(results)
    runs = {a: pool_rounds([r[a] for r in measured]) for a in ("baseline", "target")}
    return CompareOutcome(
        config=config,
        environment={"provider": "test"},
        runs=runs,
        verdicts=verdicts(config, measured),
        rounds=measured,
    )


def test_failures_are_counted_by_kind_as_in_locusts_csv(tmp_path: Path) -> None:
    write_locust_csvs(
        tmp_path / "run", requests=50, failures={"pool_timeout": 3, "server_refused": 4}, p95=12.5
    )
    run = read_run(tmp_path / "run", architecture="baseline", users=5)
    assert (run.requests, run.failures, run.pool_errors) == (50, 7, 7)
    assert run.errors_by_kind["pool_timeout"] == 3
    assert run.errors_by_kind["server_refused"] == 4
    assert set(run.errors_by_kind) == set(KINDS)
    assert run.p95_ms == 12.5
    assert [p.p95_ms for p in run.history] == [None, 12.5, 12.5]


def test_a_run_without_csvs_is_an_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match=r"no absent_stats\.csv"):
        read_run(tmp_path / "absent", architecture="target", users=1)


def test_unlabelled_failures_count_as_other() -> None:
    assert kind_of("pool_timeout: PoolTimeout") == "pool_timeout"
    assert kind_of("ConnectionResetError(104)") == "other"


def test_report_says_which_target_was_missed(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, base_errors=100, target_errors=50)
    assert outcome.exit_code == 1
    assert [(v.metric, v.status) for v in outcome.missed] == [
        ("connection pool error rate", "missed")
    ]
    summary, page = write_report(outcome, directory=tmp_path / "load")
    report = json.loads(summary.read_text())
    assert set(report) >= {"architectures", "reductions", "targets", "missed", "capacity"}
    # three rounds' counts add up; the reductions are of the pooled rates
    assert report["architectures"]["baseline"]["requests"] == 3000
    assert report["architectures"]["baseline"]["pool_errors"] == 302
    assert report["reductions"]["pool_error_rate"] == pytest.approx(1 - 152 / 302)
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3]
    assert report["intervals"]["target"]["error_rate"]["n"] == 3
    assert report["met"] is False
    assert "NOT met" in report["closing_note"]
    base = report["architectures"]["baseline"]
    assert {"requests", "failures", "error_rate", "errors_by_kind", "p50_ms", "p95_ms",
            "p99_ms", "max_ms"} <= set(base)  # fmt: skip
    text = page.read_text()
    assert text.count("<svg") >= 2
    # self-contained: nothing for a browser to fetch (SVG namespaces are names, not fetches)
    for fetch in ("<script", "<link", " src="):
        assert fetch not in text


def test_both_targets_met_exit_zero(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, base_errors=100, target_errors=10)
    assert outcome.exit_code == 0
    assert build_report(outcome)["met"] is True


def test_nothing_to_reduce_is_not_measurable_never_met() -> None:
    zero = verdict(metric="errors", baseline=[0, 0], target=[0, 0], wanted=0.8, unit="")
    worse = verdict(metric="errors", baseline=[0, 0], target=[0, 0.1], wanted=0.8, unit="")
    assert (zero.status, zero.met, zero.reduction) == ("not measurable", False, None)
    assert "not measurable at this load" in zero.reason
    assert (worse.status, worse.met) == ("missed", False)


def test_an_interval_straddling_the_target_is_inconclusive(tmp_path: Path) -> None:
    # reductions 0.9, 0.7, 0.9: the mean 0.83 is past -80 %, its interval is not
    judged = verdict(metric="errors", baseline=[10, 10, 10], target=[1, 3, 1], wanted=0.8, unit="")
    assert judged.status == "inconclusive"
    assert judged.interval is not None
    assert judged.interval.low is not None
    assert judged.interval.low < 0.8 < judged.interval.mean
    one = verdict(metric="errors", baseline=[10], target=[0], wanted=0.8, unit="")
    assert one.status == "inconclusive"  # one round has no interval
    outcome = _outcome(tmp_path, base_errors=100, target_errors=10)
    outcome.verdicts = [judged, *outcome.verdicts[1:]]
    assert outcome.exit_code == INCONCLUSIVE_EXIT == 3


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(min_value=0.01, max_value=1e4), st.floats(min_value=0, max_value=1e4)),
        min_size=2,
        max_size=8,
    ),
    wanted=st.floats(min_value=0, max_value=1),
)
def test_met_and_missed_are_decided_by_the_whole_interval(
    pairs: list[tuple[float, float]], wanted: float
) -> None:
    before, after = [b for b, _ in pairs], [a for _, a in pairs]
    result = verdict(metric="p95", baseline=before, target=after, wanted=wanted, unit=" ms")
    cuts = interval([(b - a) / b for b, a in pairs])
    assert cuts.low is not None
    assert cuts.high is not None
    assert result.met == (cuts.low >= wanted)
    assert (result.status == "missed") == (cuts.high < wanted)
    assert cuts.low <= result.reduction <= cuts.high  # type: ignore[operator]


def test_t_quantiles_are_students() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(1000) == pytest.approx(1.96)
    spread = interval([1.0, 2.0, 3.0])
    assert spread.low == pytest.approx(2 - 4.303 / 3**0.5)
    assert spread.high == pytest.approx(2 + 4.303 / 3**0.5)


def _result(users: int, *, rate: float, p95: float) -> RunResult:
    return RunResult(
        architecture="target", users=users, requests=1000, failures=int(1000 * rate),
        errors_by_kind=dict.fromkeys(KINDS, 0), p50_ms=1, p95_ms=p95, p99_ms=p95, max_ms=p95,
        requests_per_s=1,
    )  # fmt: skip


def test_break_point_is_the_first_count_past_either_bound() -> None:
    sweep = [_result(50, rate=0, p95=10), _result(10, rate=0, p95=5), _result(100, rate=0.2, p95=9)]
    assert break_point(sweep, error_rate=0.01, p95_ms=500) == 100
    assert break_point(sweep, error_rate=0.01, p95_ms=8) == 50
    assert break_point(sweep[:2], error_rate=0.01, p95_ms=500) is None


def test_pgbench_scripts_carry_the_plans_statements() -> None:
    order = next(op for op in workload_for(PLAN).operations if op.name == "place_order")
    rows = [
        {"customer_id": "c'1", "variant_id": "v1", "price": Decimal("12.50")},
        {"customer_id": "c2", "variant_id": "v2", "price": Decimal("9")},
    ]
    script = order.pgbench_script(rows=rows)
    # one index picks a whole params row: the columns of a row stay together
    assert "\\set row_i random(1, 2)" in script
    assert "(ARRAY['c''1', 'c2'])[:row_i]" in script
    assert "(ARRAY[12.50, 9])[:row_i]" in script  # numbers bare: a numeric column takes them
    # the first INSERT's RETURNING feeds the second through \gset; the token is pgbench's own
    assert "RETURNING id AS order_id \\gset" in script
    assert "VALUES (:order_id," in script
    assert "'pgbench-' || :client_id" in script
    assert "%(" not in script
    assert script.splitlines()[-1] == "END;"


def test_every_query_of_the_plan_becomes_an_operation_with_its_path() -> None:
    workload = workload_for(PLAN)
    kinds = {op.name: op.kind for op in workload.operations}
    assert kinds["product_detail"] == "read"
    assert kinds["place_order"] == "write"
    assert {op.login for op in workload.operations} == {"kct_app", "kct_readonly"}
    assert workload.weighted({"product_detail": 1}).live[0].name == "product_detail"


def test_a_plan_setting_that_caps_the_target_is_named(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, base_errors=100, target_errors=10)
    outcome.config = outcome.config.with_run(users=150)
    report = build_report(outcome)
    assert "writer max_client_conn 100 admits 50 instances" in report["closing_note"]
    assert any("writer max_client_conn" in c for c in report["capacity"]["capped_by"])
    outcome.config = outcome.config.with_run(users=5)
    assert build_report(outcome)["capacity"]["capped_by"] == []


def test_a_query_without_params_keeps_its_literal_percent_in_pgbench() -> None:
    op = Operation(name="q", kind="read", weight=1, statements=("SELECT 1 WHERE 'ab' LIKE 'a%%'",))
    script = op.pgbench_script(rows=[{}])
    assert "LIKE 'a%'" in script  # psycopg's %% is pgbench's %
    assert "row_i" not in script
    with pytest.raises(UsageError, match="workload query q: parameter"):
        replace(op, statements=("SELECT %(absent)s",)).pgbench_script(rows=[{}])


def test_pgbench_p95_reads_only_its_logs_and_keeps_the_saved_summary(tmp_path: Path) -> None:
    """pgbench's summary (``baseline.out``) holds lines such as ``scaling factor: 1``."""
    from harness.load.pgbench import _p95_from_logs

    summary = tmp_path / "baseline.out"
    summary.write_text("scaling factor: 1\nquery mode: simple\n")
    # -l: client, transaction, latency in µs, script, epoch, µs
    (tmp_path / "baseline.4242").write_text(
        "".join(f"0 {i} {1000 * (i + 1)} 0 1700000000 0\n" for i in range(20))
    )
    assert _p95_from_logs(tmp_path / "baseline") == 19.0  # ms: nearest rank, 19 of 20
    assert summary.exists()
    assert not (tmp_path / "baseline.4242").exists()


def test_a_missed_latency_target_is_explained_from_the_measurements(tmp_path: Path) -> None:
    from harness.load.poolerview import PoolerView

    # the target's p95 (60 ms) is 40 % under the baseline's: make the target slower instead
    outcome = _outcome(tmp_path, base_errors=100, target_errors=0)
    outcome.verdicts = verdicts(
        outcome.config, [{"baseline": r["target"], "target": r["baseline"]} for r in outcome.rounds]
    )
    assert outcome.verdicts[1].status == "missed"
    averages = {"avg_wait_time": 4.0, "avg_xact_time": 6.0, "avg_query_time": 1.5}
    view = PoolerView(console="reader", samples=3, averages_ms=averages, pool_mode="transaction")
    outcome.poolers = [[view] for _ in outcome.rounds]
    outcome.load_average = [{"baseline": 3.0, "target": 5.5} for _ in outcome.rounds]
    outcome.locust_cpu = [{"baseline": 0.4, "target": 0.97} for _ in outcome.rounds]
    note = build_report(outcome)["closing_note"]
    assert "4.00 ms queued for a server connection, 6.00 ms per transaction" in note
    assert "load average at the end of the runs was 3.0 to 5.5" in note
    assert "Locust used 0.97 to 0.97 cores during the target's runs" in note
    # met targets need no explaining
    assert (
        "queued for a server connection"
        not in build_report(_outcome(tmp_path, 100, 0))["closing_note"]
    )


def test_the_note_says_what_a_connection_cost_and_how_many_servers_opened(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, 30, 1, rounds=2)
    outcome.environment["connections"] = "TLS and SCRAM-SHA-256 on both sides"
    outcome.open_ms = {"baseline, direct": 9.04, "target, writer": 3.5, "target, reader": None}
    outcome.server_sessions = [{"baseline": 700, "target": 40}, {"baseline": 1500, "target": 2}]
    note = build_report(outcome)["closing_note"]
    assert "Connections: TLS and SCRAM-SHA-256 on both sides." in note
    # a path that refused connections has no time, and is not shown as one
    assert (
        "took (median of 10, before any load): baseline, direct 9.0 ms; target, writer 3.5 ms."
        in note
    )
    assert "all rounds: baseline 2,200, target 42 (pg_stat_database.sessions)" in note
    # a server that does not count its sessions (before PostgreSQL 14): no total is made up
    outcome.server_sessions = [{"baseline": 700, "target": None}]
    assert "Server connections" not in build_report(outcome)["closing_note"]


def test_the_note_says_what_shared_the_cores(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, 30, 1, rounds=2)
    outcome.node_cpu = [
        {"baseline": {"primary": 1.0, "Locust": 2.0}, "target": {"replica": 0.5, "Locust": 3.0}},
        {"baseline": {"primary": 3.0, "Locust": 2.0}, "target": {"replica": 0.7, "Locust": 1.0}},
    ]
    note = build_report(outcome)["closing_note"]
    assert (
        "baseline: primary 2.00 ms, Locust 2.00 ms; target: replica 0.60 ms, Locust 2.00 ms."
    ) in note


def test_no_cpu_measured_no_projection(tmp_path: Path) -> None:
    """Servers that are not this machine's own: no CPU per node, so nothing is claimed."""
    report = build_report(_outcome(tmp_path, 30, 1, rounds=2))
    assert report["projection"] is None
    assert "PROJECTION" not in report["closing_note"]


def test_the_report_labels_the_projection_and_keeps_the_measured_verdict(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path, 30, 1, rounds=2)
    outcome.node_cpu = [
        {"baseline": {"primary": 2.0, "Locust": 1.2},
         "target": {"primary": 0.3, "replica": 0.4, "PgBouncer writer": 0.3,
                    "PgBouncer reader": 0.3, "Locust": 1.2}},
    ] * 2  # fmt: skip
    report = build_report(outcome)
    projection = report["projection"]
    assert projection is not None
    assert projection["label"].startswith("projection")
    measured = [r["architectures"]["target"] for r in report["rounds"]]
    assert projection["sides"]["target"]["measured_p95_ms"] == pytest.approx(
        sum(r["succeeded_p95_ms"] or r["p95_ms"] for r in measured) / len(measured)
    )
    # the exit code is the measured verdict's, whatever the projection says
    assert report["exit_code"] == outcome.exit_code
    lines = projection_lines(projection)
    assert all(line.startswith("PROJECTION") for line in lines)
    assert "not a measurement" in lines[0]
    assert "\n".join(lines) in report["closing_note"]


def test_a_sides_interval_stays_within_what_its_quantity_can_be() -> None:
    from harness.load.confidence import interval

    wide = interval([1.0, 1.0, 120.0], floor=0.0)  # two quick rounds and one slow
    assert wide.low == 0.0
    assert wide.high is not None
    assert wide.high > 120.0
    share = interval([0.99, 0.999, 0.90], floor=0.0, ceiling=1.0)
    assert share.high == 1.0
    free = interval([1.0, 1.0, 120.0])  # a reduction may be below 0: no cut unless asked
    assert free.low is not None
    assert free.low < 0


def test_how_late_the_load_generators_loop_ran_is_read_from_every_process(
    tmp_path: Path,
) -> None:
    write_locust_csvs(tmp_path / "run", requests=50, failures={}, p95=12.5)
    # two processes' watches: 19 wake-ups on time, one 90 ms late
    (tmp_path / "run_loop_late_ms.11.json").write_text(json.dumps([0.0] * 10))
    (tmp_path / "run_loop_late_ms.12.json").write_text(json.dumps([0.0] * 9 + [90.0]))
    run = read_run(tmp_path / "run", architecture="target", users=5)
    assert run.loop_late_max_ms == 90.0
    assert run.loop_late_p95_ms == 0.0  # 19 of 20 on time: the 95th is still on time
    assert run.loop_late_share == pytest.approx(90 / (90 + 20 * 10))
    report = {"architectures": {"target": run.to_json()}}
    (line,) = loop_lines(report)
    assert "target 0.00 ms at p95, 90 ms at longest, late 31.0% of the time" in line
    assert loop_lines({"architectures": {"target": {"loop_late_p95_ms": None}}}) == []
    assert run.loop_wait is not None
    assert run.loop_wait.wake_ups == 20
    assert run.loop_wait.share == pytest.approx(run.loop_late_share)


def test_the_start_ups_share_of_the_p95_is_judged_from_the_times_after_it(
    tmp_path: Path,
) -> None:
    rounds: list[dict[str, Any]] = []
    for number, (before, after) in enumerate(((8.0, 4.0), (10.0, 5.0)), start=1):
        sides = {}
        for name, started_ms in (("baseline", before), ("target", after)):
            prefix = tmp_path / f"r{number}" / name
            prefix.parent.mkdir(exist_ok=True)
            write_locust_csvs(prefix, requests=40, failures={}, p95=12.5)
            # every request, the start-up's slow ones among them; then those after it
            (prefix.parent / f"{name}_succeeded_ms.1.json").write_text(json.dumps([60.0] * 40))
            (prefix.parent / f"{name}_succeeded_ms_started.1.json").write_text(
                json.dumps([started_ms] * 20)
            )
            # four instances' first requests, among every request's times
            firsts = [started_ms * 10] * 3 + [started_ms * 20]
            (prefix.parent / f"{name}_succeeded_ms_cold.1.json").write_text(json.dumps(firsts))
            run = read_run(prefix, architecture=name, users=5)
            assert run.started_p95_ms == started_ms
            assert run.succeeded_p95_ms == 60.0
            assert (run.cold_starts, run.cold_p50_ms) == (4, started_ms * 10)
            assert run.cold_p95_ms == started_ms * 20
            sides[name] = run.to_json()
        rounds.append({"round": number, "architectures": sides})
    report = {"rounds": rounds, "architectures": rounds[-1]["architectures"]}
    (judged,) = startup_lines(report, wanted=0.30)
    (cold,) = cold_start_lines(report)
    assert "9 ms -> 4.5 ms" in judged
    assert "(met with the start-up left out)" in judged
    assert "not the verdict" in judged
    # 4 cold starts of the 40 successful requests of the last round
    assert "target 50 ms at p50 and 100 ms at p95 over 4 cold starts (10.0% of" in cold
    del rounds[1]["architectures"]["target"]["started_p95_ms"]
    assert startup_lines(report, wanted=0.30) == []
    assert cold_start_lines(report) == [cold]  # a round without the record takes no other
