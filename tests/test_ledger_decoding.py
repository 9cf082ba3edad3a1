"""Reading ``test_decoding``'s lines back: names, quoting, keys, and what it cannot say."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.ledger.decoding import UNCHANGED_TOAST, DecodingError, parse_change


def test_insert_with_quoted_names_and_literals() -> None:
    line = (
        'table "My Schema"."Odd ""T""": INSERT: id[integer]:5 "Note Col"[text]:\'it\'\'s\' '
        "tags[text[]]:'{a,\"b c\"}' ok[boolean]:true bits[bit(4)]:B'0101' gone[jsonb]:null"
    )
    change = parse_change(line)
    assert (change.schema, change.table, change.op) == ("My Schema", 'Odd "T"', "INSERT")
    assert change.new == {
        "id": "5",
        "Note Col": "it's",
        "tags": '{a,"b c"}',
        "ok": "true",
        "bits": "0101",
        "gone": None,
    }
    assert change.types["tags"] == "text[]"
    assert change.old_key is None


def test_update_with_a_changed_key_and_an_unchanged_toast_value() -> None:
    change = parse_change(
        "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 "
        "big[text]:unchanged-toast-datum a[text]:'z'"
    )
    assert change.old_key == {"id": "1"}
    assert change.new == {"id": "2", "big": UNCHANGED_TOAST, "a": "z"}


def test_delete_by_key_and_without_one() -> None:
    assert parse_change("table public.t: DELETE: id[integer]:2").old_key == {"id": "2"}
    assert parse_change("table public.t: DELETE: (no-tuple-data)").old_key is None
    assert parse_change("table public.t: TRUNCATE: (no-flags)").op == "TRUNCATE"


def test_a_line_it_cannot_read_is_an_error_not_a_guess() -> None:
    with pytest.raises(DecodingError):
        parse_change("table public.t: INSERT: id[integer]:'unterminated")
    with pytest.raises(DecodingError):
        parse_change("BEGIN 123")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.text(), max_size=5))
def test_any_text_value_reads_back_as_written(values: list[str]) -> None:
    """Quotes, brackets, colons and the marker words inside literals stay literal."""
    cols = " ".join(f"c{i}[text]:'{v.replace(chr(39), chr(39) * 2)}'" for i, v in enumerate(values))
    change = parse_change(f"table public.t: INSERT: {cols}".rstrip())
    assert change.new == {f"c{i}": v for i, v in enumerate(values)}
