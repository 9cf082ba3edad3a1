"""What a Locust run is told: the judged window reaches the locustfile as Locust's own does."""

from __future__ import annotations

import pytest

from harness.load.locust import LocustRun


def _run(*, after_start: bool) -> LocustRun:
    return LocustRun(
        architecture="target", writer_url="postgresql://w", reader_url=None, users=3,
        spawn_rate=1.0, duration=5, seed=1, stop_timeout=1, after_start=after_start,
    )  # fmt: skip


def test_judging_after_start_reaches_the_locustfile_and_nothing_else_leaks_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGCUTOVER_LOAD_AFTER_START", "1")  # a caller's own, not this run's
    assert "PGCUTOVER_LOAD_AFTER_START" not in _run(after_start=False).environ()
    assert _run(after_start=True).environ()["PGCUTOVER_LOAD_AFTER_START"] == "1"
