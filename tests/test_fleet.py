"""One user's succession of instances: lifetimes, suspensions, bursts, on a test clock."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.load.config import load_config
from harness.load.fleet import Succession, lifetime_together

SETTINGS = replace(
    load_config().instance,
    lifetime=10.0,
    lifetime_jitter=0.0,
    suspended_share=0.0,
    suspended_for=5.0,
    cold_start_share=0.0,
)


class Recorded:
    """An instance that only remembers whether it was closed (no connection of its own)."""

    def __init__(self) -> None:
        self.closed = False

    def run(self, operation: object, params: object) -> None: ...

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _succession(**changes: Any) -> tuple[Succession, Clock, list[Recorded]]:
    made: list[Recorded] = []
    clock = Clock()

    def make() -> Recorded:
        made.append(Recorded())
        return made[-1]

    life = Succession(
        replace(SETTINGS, **changes), make=make, rng=random.Random(1), clock=clock, wall=clock
    )
    return life, clock, made


def test_an_instance_is_stopped_at_the_end_of_its_lifetime_and_the_next_cold_starts() -> None:
    life, clock, made = _succession()
    assert life.cold  # the first request starts the first instance
    assert life.instance() is made[0]
    first = made[0]
    assert not life.cold
    assert life.instance() is first
    assert len(made) == 1
    clock.now += 9.9
    life.recycle_if_due()
    assert not life.cold
    assert life.instance() is first
    assert not first.closed
    clock.now += 0.1
    life.recycle_if_due()
    assert first.closed
    assert life.suspended == []
    assert life.cold  # its request will pay the next instance's connections
    assert life.instance() is not first
    assert len(made) == 2


def test_a_suspended_instance_keeps_its_connections_until_the_platform_reclaims_it() -> None:
    life, clock, made = _succession(suspended_share=1.0)
    life.instance()
    clock.now += 10
    life.recycle_if_due()
    life.instance()
    first, second = made
    assert not first.closed
    assert [i for _, i in life.suspended] == [first]
    clock.now += 4.9
    life.recycle_if_due()
    assert not first.closed
    clock.now += 0.1
    life.recycle_if_due()
    assert first.closed
    assert life.suspended == []
    assert not second.closed
    life.close()
    assert second.closed


def test_closing_the_user_closes_the_frozen_instances_too() -> None:
    life, clock, made = _succession(suspended_share=1.0, suspended_for=25.0)
    for _ in range(3):
        life.instance()
        clock.now += 10
        life.recycle_if_due()
    assert [i for _, i in life.suspended] == made
    assert not any(i.closed for i in made)
    life.close()
    assert all(i.closed for i in made)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    base=st.floats(min_value=0.5, max_value=600),
    now=st.floats(min_value=1e9, max_value=2e9),
)
def test_lifetimes_together_end_on_one_instant(base: float, now: float) -> None:
    left = lifetime_together(base, now=now)
    assert 0 < left <= base + 1e-6
    # every instance asked within the same period ends at the same instant
    later = now + left / 2
    assert abs((now + left) - (later + lifetime_together(base, now=later))) < 1e-3


def test_a_burst_share_of_one_recycles_every_instance_at_the_same_wall_clock_instant() -> None:
    ends = []
    for offset in (0.0, 1.3, 7.7):
        life, clock, _ = _succession(cold_start_share=1.0)
        clock.now = 1000.0 + offset
        life.instance()
        ends.append(life.expires)
    assert ends == [1010.0, 1010.0, 1010.0]
