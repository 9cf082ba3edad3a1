"""Which changes of a column's definition leave every value and every write as it was."""

from __future__ import annotations

import pytest

from harness.invariants.structure import _widened


@pytest.mark.parametrize(
    ("was", "now", "expected"),
    [
        ("character varying(50)", "character varying(100)", True),
        ("character varying(50) NOT NULL", "character varying(100) NOT NULL", True),
        ("character varying(50)", "text", True),
        ("character varying(50) NOT NULL", "text NOT NULL", True),
        ("numeric(10,2)", "numeric(12,2)", True),
        ("numeric(10,2)", "numeric", True),
        ("integer", "bigint", True),
        ("smallint NOT NULL DEFAULT 0", "integer NOT NULL DEFAULT 0", True),
        # Narrower, or another scale, or padded differently: values may change or fail.
        ("character varying(100)", "character varying(50)", False),
        ("numeric(10,2)", "numeric(12,3)", False),
        ("numeric", "numeric(10,2)", False),
        ("bigint", "integer", False),
        ("text", "character varying(10)", False),
        ("character(5)", "character(10)", False),
        # Wider, but the rest of the definition changed too: that is its own finding.
        ("character varying(50) NOT NULL", "character varying(100)", False),
        ("integer DEFAULT 0", "bigint DEFAULT 1", False),
        ("character varying(5)[]", "character varying(9)", False),
    ],
)
def test_a_column_only_widened_is_told_apart(was: str, now: str, expected: object) -> None:
    assert _widened(was, now) is expected
