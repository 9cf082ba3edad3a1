"""How two answers to one read are held equal: in order where the query orders its rows."""

from __future__ import annotations

import pytest

from harness.invariants.answers import _difference, _same

ROWS = [(1, "a"), (2, "b")]


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("SELECT id, name FROM t ORDER BY id", ROWS, True),
        ("SELECT id, name FROM t ORDER BY id", ROWS[::-1], False),
        # No ORDER BY: any order is the same answer, other rows are not.
        ("SELECT id, name FROM t", ROWS[::-1], True),
        ("SELECT id, name FROM t", [(1, "a"), (2, "c")], False),
        # A LIMIT without ORDER BY may return any rows: only their number counts.
        ("SELECT id, name FROM t LIMIT 2", [(3, "c"), (4, "d")], True),
        ("SELECT id, name FROM t LIMIT 2", [(3, "c")], False),
    ],
)
def test_answers_are_compared_as_the_query_orders_them(
    text: str, after: list[tuple[object, ...]], expected: object
) -> None:
    assert _same(text, ROWS, after) is expected


def test_a_difference_names_the_first_row_that_differs() -> None:
    assert (
        _difference(ROWS, [(1, "a"), (2, "c")])
        == "the same 2 rows counted, other values: (2, b) before, (2, c) after"
    )
    assert _difference(ROWS, ROWS[:1]) == "2 rows before the migration, 1 after"
