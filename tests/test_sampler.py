"""Whom the lock sampler blames for an application's wait, without a server."""

from __future__ import annotations

from typing import Any, cast

import pytest

from harness.connections import Conn
from harness.runner.locks import step_application_name
from harness.traffic.clients import Timeline
from harness.traffic.sampler import LockSampler


class _NoPrimary:
    """A primary on which the migration holds nothing."""

    def execute(self, *_args: Any, **_kwargs: Any) -> _NoPrimary:
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return [(0.0, None, None, None, None)]  # the server's clock, and no lock held


def _sampler() -> LockSampler:
    timeline = Timeline()
    timeline.mark("up/002_move.sql", step=True)
    timeline.mark_after("up/002_move.sql")
    timeline.mark("checks after the migration")
    return LockSampler([], timeline, migration=step_application_name(plan="shop", label=""))


@pytest.mark.parametrize(
    ("btype", "bapp", "phase", "kind", "step"),
    [
        ("client backend", "pgcutover shop up/002_move.sql", "checks after the migration",
         "migration", "up/002_move.sql"),
        ("autovacuum worker", "", "up/002_move.sql", "background", ""),
        ("client backend", "pgcutover-traffic-3", "up/002_move.sql", "application", ""),
        ("client backend", "psql", "up/002_move.sql", "other", ""),
        # Replay of a lock nobody saw the migration hold: the step's while it runs or just
        # after, not during the checks.
        ("startup", "", "after up/002_move.sql", "migration", "up/002_move.sql"),
        ("startup", "", "checks after the migration", "replay", ""),
    ],
)  # fmt: skip
def test_blockers_are_named_by_what_they_are(
    btype: str, bapp: str, phase: str, kind: str, step: str
) -> None:
    found = _sampler()._blocker(
        relation="shop.orders",
        btype=btype,
        bapp=bapp,
        bquery="autovacuum: VACUUM shop.orders" if btype != "client backend" else "SELECT 1",
        primary=cast(Conn, _NoPrimary()),
        phase=phase,
    )
    assert found[:1] + found[2:3] == (kind, step)
    if kind == "background":
        assert found[1] == "the autovacuum worker"


class _Queue:
    """The runner's ungranted table locks, one sample after another."""

    def __init__(self, samples: list[tuple[float, list[tuple[str, float]]]]) -> None:
        self.samples = samples
        self.rows: list[tuple[object, ...]] = []

    def execute(self, *_args: Any, **_kwargs: Any) -> _Queue:
        clock, waits = self.samples.pop(0)
        self.rows = [(clock, key, began) for key, began in waits] or [(clock, None, None)]
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return self.rows


def test_a_queue_that_ended_is_not_stretched_by_later_samples() -> None:
    """The step queued from 10.0 to between the samples at 10.1 and 10.15: that stretch,
    and not every later moment, is left unjudged. A wait on the step at 12 is the step's."""
    sampler = _sampler()
    queue = _Queue([(10.05, [("k", 10.0)]), (10.1, [("k", 10.0)]), (10.15, []), (10.2, []),
                    (12.0, [])])  # fmt: skip
    for _ in range(5):
        sampler._poll_queued(cast(Conn, queue), "primary", exact=True)
    assert sampler._queued["primary"] == {"k": [10.0, 10.15]}
