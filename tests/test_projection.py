"""The separate-machines projection: its queueing arithmetic, and that it says what it is."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.load.projection import P95_PER_MEAN, Point, erlang_c, project


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


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    hold=st.floats(min_value=0.5, max_value=20.0),
    rate=st.floats(min_value=10.0, max_value=300.0),
    base_cpu=cpu,
    parts=st.tuples(cpu, cpu, cpu, cpu),
)
def test_a_run_the_model_made_is_fitted_back_exactly(
    hold: float, rate: float, base_cpu: float, parts: tuple[float, float, float, float]
) -> None:
    """Rounds whose p95 the model itself computed from a known hold: the fit finds that
    hold, and the prediction for the target is exact (error 0)."""
    base = Point(p95_ms=0.0, rate=rate, cpu_ms={"Locust": base_cpu, "primary": base_cpu})
    target = Point(
        p95_ms=0.0,
        rate=rate,
        cpu_ms={"Locust": parts[0], "primary": parts[1], "replica": parts[2],
                "PgBouncer writer": parts[3]},
    )  # fmt: skip
    cores = 2
    # saturated: the model makes no number to fit
    assume(all(p.rate * p.cpu_total_ms / 1000 < cores for p in (base, target)))
    rounds = []
    for p in (base, target):
        mean = p.mean_ms(cores, hold, separate=False)
        assert mean is not None
        p95 = P95_PER_MEAN * mean
        name = "baseline" if p is base else "target"
        rounds.append((name, p95, p))
    report = {
        "cpus": cores,
        "config": {"targets": {"p95_reduction": 0.3, "error_reduction": 0.8}},
        "architectures": {n: {"pool_error_rate": 0.0} for n in ("baseline", "target")},
        "rounds": [
            {"architectures": {
                n: {"succeeded_p95_ms": p95, "p95_ms": p95, "requests_per_s": p.rate}
                for n, p95, p in rounds
            }}
        ],
        "cpu_ms_per_request": [{n: p.cpu_ms for n, _, p in rounds}],
    }  # fmt: skip
    projection = project(report)
    assert projection is not None
    assert projection["hold_ms"] == pytest.approx(hold, rel=1e-6)
    assert projection["validation"]["error"] == pytest.approx(0, abs=1e-9)
    assert projection["validation"]["validated"]
    for name, _, p in rounds:
        side = projection["sides"][name]
        # every node with cores of its own waits less than all of them sharing these
        assert side["separate_p95_ms"] <= side["shared_p95_ms"] * (1 + 1e-9)
        assert side["separate_p95_ms"] >= P95_PER_MEAN * p.cpu_total_ms * (1 - 1e-9)
    assert math.isfinite(projection["reductions"]["p95"])
