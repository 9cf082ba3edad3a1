"""The separate-machines projection: its queueing arithmetic, and that it says what it is."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.load.loopwait import LoopWait
from harness.load.projection import Point, erlang_c, project


def test_erlang_c_matches_the_textbook() -> None:
    # M/M/1: an arrival waits exactly when the one server is busy, with chance rho
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    # M/M/2 at rho 0.5: 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(2, 0.0) == 0
    # at or past every core busy there is no steady state, and no number is made up
    assert erlang_c(2, 2.0) is None
    assert erlang_c(2, 2.5) is None


def test_wake_ups_are_the_client_once_the_servers_once_and_the_poolers_twice() -> None:
    point = Point(
        p95_ms=10.0,
        rate=100.0,
        cpu_ms={"Locust": 1.0, "primary": 0.1, "replica": 0.3,
                "PgBouncer writer": 0.2, "PgBouncer reader": 0.2},
    )  # fmt: skip
    visits = point.visits()
    assert visits["Locust"] == 1
    assert visits["primary"] + visits["replica"] == pytest.approx(1)
    assert visits["replica"] == pytest.approx(0.75)
    assert visits["PgBouncer writer"] + visits["PgBouncer reader"] == pytest.approx(2)


cpu = st.floats(min_value=0.05, max_value=2.0)
lateness = st.lists(st.floats(min_value=0.0, max_value=60.0), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    hold=st.floats(min_value=0.5, max_value=20.0),
    rate=st.floats(min_value=10.0, max_value=300.0),
    base_cpu=cpu,
    parts=st.tuples(cpu, cpu, cpu, cpu),
    late=st.one_of(st.none(), st.tuples(lateness, lateness)),
)
def test_a_run_the_model_made_is_fitted_back_exactly(
    hold: float,
    rate: float,
    base_cpu: float,
    parts: tuple[float, float, float, float],
    late: tuple[list[float], list[float]] | None,
) -> None:
    """Rounds whose p95 the model itself computed from a known hold (with the loop's wait
    measured on each side, or without a watch): the fit finds that hold, and the
    prediction for the target is exact (error 0)."""
    loops = (
        (None, None)
        if late is None
        else tuple(LoopWait.from_samples(x, tick_ms=10.0) for x in late)
    )
    base = Point(p95_ms=0.0, rate=rate, cpu_ms={"Locust": base_cpu, "primary": base_cpu},
                 loop=loops[0])  # fmt: skip
    target = Point(
        p95_ms=0.0,
        rate=rate,
        cpu_ms={"Locust": parts[0], "primary": parts[1], "replica": parts[2],
                "PgBouncer writer": parts[3]},
        loop=loops[1],
    )  # fmt: skip
    cores = 2
    # saturated: the model makes no number to fit
    assume(all(p.rate * p.cpu_total_ms / 1000 < cores for p in (base, target)))
    rounds = []
    for p in (base, target):
        mean = p.mean_ms(cores, hold, separate=False)
        assert mean is not None
        p95 = p.p95_for(mean)
        name = "baseline" if p is base else "target"
        rounds.append((name, p95, p))
    report = {
        "cpus": cores,
        "config": {"targets": {"p95_reduction": 0.3, "error_reduction": 0.8}},
        "architectures": {n: {"pool_error_rate": 0.0} for n in ("baseline", "target")},
        "rounds": [
            {"architectures": {
                n: {"succeeded_p95_ms": p95, "p95_ms": p95, "requests_per_s": p.rate,
                    "loop_wait": p.loop.to_json() if p.loop else None}
                for n, p95, p in rounds
            }}
        ],
        "cpu_ms_per_request": [{n: p.cpu_ms for n, _, p in rounds}],
    }  # fmt: skip
    projection = project(report)
    assert projection is not None
    assert projection["hold_ms"] == pytest.approx(hold, rel=1e-3)
    assert projection["validation"]["error"] == pytest.approx(0, abs=1e-3)
    assert projection["validation"]["validated"]
    for name, _, p in rounds:
        side = projection["sides"][name]
        # every node with cores of its own waits less than all of them sharing these
        assert side["separate_p95_ms"] <= side["shared_p95_ms"] * (1 + 1e-6)
        assert side["separate_p95_ms"] >= p.p95_for(p.cpu_total_ms) * (1 - 1e-6)
    assert math.isfinite(projection["reductions"]["p95"])


def test_the_model_is_checked_on_the_running_fleet_and_says_what_the_start_up_adds() -> None:
    """Fitted and checked on the p95 once every instance had started where every round
    has it; the whole run's p95 is set beside the same prediction."""
    cpu = {"Locust": 0.5, "primary": 1.0}
    target_cpu = {"Locust": 0.5, "primary": 0.2, "replica": 0.2, "PgBouncer writer": 0.1}

    def side(started: float | None, whole: float) -> dict[str, object]:
        return {"started_p95_ms": started, "succeeded_p95_ms": whole, "p95_ms": whole,
                "requests_per_s": 400.0}  # fmt: skip

    def report(started: tuple[float | None, float | None]) -> dict[str, object]:
        return {
            "cpus": 2,
            "config": {"targets": {"p95_reduction": 0.3, "error_reduction": 0.8}},
            "architectures": {n: {"pool_error_rate": 0.0} for n in ("baseline", "target")},
            "rounds": [{"architectures": {
                "baseline": side(started[0], 8.0), "target": side(started[1], 9.0)
            }}],
            "cpu_ms_per_request": [{"baseline": cpu, "target": target_cpu}],
        }  # fmt: skip

    steady = project(report((7.5, 5.0)))
    assert steady is not None
    v = steady["validation"]
    assert v["window"] == "once every instance had started"
    assert v["measured_target_p95_ms"] == 5.0
    assert v["whole_run_measured_p95_ms"] == 9.0
    assert v["whole_run_error"] == pytest.approx(v["predicted_target_p95_ms"] / 9.0 - 1)
    # a round without the record: the whole run's, for fit and check alike
    whole = project(report((7.5, None)))
    assert whole is not None
    assert whole["validation"]["window"] == "over the whole run"
    assert whole["validation"]["measured_target_p95_ms"] == 9.0
    assert whole["hold_ms"] != steady["hold_ms"]  # fitted on 8.0, not 7.5
