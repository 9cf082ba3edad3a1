"""The phase clock: which rows it makes from the gate's progress lines and checks."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import phases
from harness.phases import PhaseClock, phases_html


@dataclass(frozen=True)
class _Check:
    name: str


class _Time:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_steps_and_checks_get_the_time_between_events() -> None:
    t = _Time()
    said: list[str] = []
    emitted: list[str] = []
    clock = PhaseClock(clock=t)
    progress = clock.wrap(said.append)
    emit = clock.wrap_emit(lambda c: emitted.append(c.name))
    t.now = 2.0
    progress("seeding the legacy database (scale 1)")
    t.now = 7.0
    phases.note(rows=1000, nbytes=5_000_000)
    t.now = 7.5
    emit(_Check("lint"))
    progress("migrating with plan 'kct'")
    t.now = 8.0
    progress("applying up/001.sql (3 statements)")
    t.now = 9.0
    progress("up/001.sql: done in 1.00 sec")
    t.now = 9.25
    emit(_Check("migrate.steps"))
    t.now = 10.0
    table = clock.finish()
    rows = {(r["name"], r["kind"]): r for r in table}
    assert [(r["name"], r["seconds"]) for r in table] == [
        ("start cluster", 2.0),
        ("load", 5.0),
        ("lint", 0.5),
        ("migrate", 0.5),
        ("up/001.sql", 1.0),
        ("migrate.steps", 0.25),
        ("teardown", 0.75),
    ]
    assert rows[("load", "phase")]["rows_per_second"] == 200.0
    assert rows[("load", "phase")]["mb_per_second"] == 1.0
    # The wrapped callables still pass everything on.
    assert len(said) == 4
    assert emitted == ["lint", "migrate.steps"]
    # Once finished, nothing reports into it any more.
    phases.note(rows=1)
    assert clock.rows[1].rows == 1000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "s", "d", "c"]), st.floats(0, 100)), max_size=20))
def test_the_rows_add_up_to_the_whole_run(events: list[tuple[str, float]]) -> None:
    t = _Time()
    clock = PhaseClock(clock=t)
    progress = clock.wrap(lambda _: None)
    emit = clock.wrap_emit(lambda _: None)
    for kind, gap in events:
        t.now += gap
        if kind == "p":
            progress("rolling back")
        elif kind == "s":
            progress("applying down/001.sql (1 statement)")
        elif kind == "d":
            progress("down/001.sql: done in 0.10 sec")
        else:
            emit(_Check("x"))
    t.now += 1.0
    total = sum(float(str(r["seconds"])) for r in clock.finish())
    assert abs(total - t.now) < 0.001 * (1 + len(events))


def test_the_html_table_escapes_names_and_skips_a_missing_table() -> None:
    page = phases_html([{"name": "<b>", "kind": "step", "seconds": 1.0, "mb_per_second": 2.5}])
    assert "&lt;b&gt;" in page
    assert "<td>2.5</td>" in page
    assert "100%" in page
    assert phases_html(None) == ""
    assert phases_html("nonsense") == ""
