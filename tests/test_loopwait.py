"""The loop watch's record read as a wait, and its sum with an exponential time."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.load.loopwait import LoopWait

TICK = 10.0
lateness = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=80.0)), min_size=1, max_size=60
)


def _simulated_p95(late: list[float], mean: float, *, n: int, seed: int) -> float:
    """Requests at random moments of the watched time: each waits out the busy stretch
    it lands in (the last ``l`` ms of a ``tick + l`` stretch), plus an exponential time."""
    rng = random.Random(seed)
    weights = [TICK + x for x in late]
    times = []
    for _ in range(n):
        stretch = rng.choices(late, weights=weights)[0]
        at = rng.uniform(0.0, TICK + stretch)
        wait = max(0.0, at - TICK)
        times.append(wait + rng.expovariate(1 / mean))
    times.sort()
    return times[math.ceil(0.95 * n) - 1]


def test_without_lateness_the_p95_is_the_exponential_one() -> None:
    wait = LoopWait.from_samples([0.0] * 50, tick_ms=TICK)
    assert wait.share == 0.0
    assert wait.p95(2.0) == pytest.approx(2.0 * math.log(20), rel=1e-6)
    assert wait.mean_for_p95(6.0) == pytest.approx(6.0 / math.log(20), rel=1e-6)


def test_the_share_weighs_each_lateness_by_the_time_it_covers() -> None:
    wait = LoopWait.from_samples([0.0] * 9 + [90.0], tick_ms=TICK)
    assert wait.share == pytest.approx(90 / (90 + 10 * TICK))
    assert wait.exceeds(0.0, 1.0) == pytest.approx(1.0)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(late=lateness, mean=st.floats(min_value=0.2, max_value=10.0))
def test_the_p95_agrees_with_a_simulation(late: list[float], mean: float) -> None:
    wait = LoopWait.from_samples(late, tick_ms=TICK)
    simulated = _simulated_p95([round(x * 4) / 4 for x in late], mean, n=40_000, seed=7)
    assert wait.p95(mean) == pytest.approx(simulated, rel=0.08, abs=0.3)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(late=lateness, mean=st.floats(min_value=0.1, max_value=20.0))
def test_the_mean_for_a_p95_inverts_it(late: list[float], mean: float) -> None:
    wait = LoopWait.from_samples(late, tick_ms=TICK)
    p95 = wait.p95(mean)
    assert wait.p95(mean) >= mean * math.log(20) * (1 - 1e-9)  # a wait only adds
    assert wait.mean_for_p95(p95) == pytest.approx(mean, rel=1e-3)
    for t in (0.0, p95 / 2, p95, p95 * 2):
        assert wait.exceeds(t, mean) >= wait.exceeds(t + 1.0, mean)


def test_merged_and_json_keep_every_wake_up() -> None:
    one = LoopWait.from_samples([0.0, 1.0, 3.0], tick_ms=TICK)
    two = LoopWait.from_samples([1.0, 0.1], tick_ms=TICK)
    both = LoopWait.merged([one, two])
    assert both.wake_ups == 5
    assert dict(both.late) == {1.0: 2, 3.0: 1}  # 0.1 ms is below the record's resolution
    assert LoopWait.from_json(both.to_json()) == both
