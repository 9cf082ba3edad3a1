"""The legacy data generator, without a database: counts, determinism, integrity, escaping.

The rows are read back with a COPY text decoder written here from the
PostgreSQL documentation, independently of the generator's own escaping.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.legacy import LEGACY_COUNTS, counts
from harness.legacy.data import AWKWARD_NAMES, COLUMNS, FOREIGN_KEYS, copy_escape, generate

Row = dict[str, str | None]
Tables = dict[str, list[Row]]

# COPY text format: backslash sequences, and \N alone as a field for NULL.
_BACKSLASH = re.compile(r"\\(.)", re.DOTALL)
_SEQUENCES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_CUID = re.compile(r"c[0-9a-f]{24}")


def decode_field(field: str) -> str | None:
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    return _BACKSLASH.sub(lambda m: _SEQUENCES[m[1]], field)


def decode_table(text: str, columns: tuple[str, ...]) -> list[Row]:
    assert text.endswith("\n") or not text
    rows = []
    for line in text.split("\n")[:-1]:
        fields = line.split("\t")
        assert len(fields) == len(columns), line
        rows.append(dict(zip(columns, map(decode_field, fields), strict=True)))
    return rows


def read_all(*, scale: int, seed: int | None = None) -> dict[str, str]:
    tables = generate(scale=scale) if seed is None else generate(scale=scale, seed=seed)
    return {t.table: "".join(t.chunks) for t in tables}


@pytest.fixture(scope="module")
def scale_1() -> Tables:
    return {table: decode_table(text, COLUMNS[table]) for table, text in read_all(scale=1).items()}


def test_scale_1_has_the_plans_counts(scale_1: Tables) -> None:
    assert {t: len(rows) for t, rows in scale_1.items()} == dict(LEGACY_COUNTS)
    assert (len(scale_1["products"]), len(scale_1["product_variants"])) == (37, 544)
    assert len(scale_1["customers"]) == 3369


def test_scale_3_multiplies_every_count() -> None:
    texts = read_all(scale=3)
    assert {t: text.count("\n") for t, text in texts.items()} == {
        t: 3 * n for t, n in LEGACY_COUNTS.items()
    }
    assert counts(scale=3)["customers"] == 3 * 3369


def test_declared_rows_match_the_lines_written() -> None:
    for table in generate(scale=2):
        assert sum(chunk.count("\n") for chunk in table.chunks) == table.rows, table.table


@pytest.mark.parametrize("scale", [0, -1, True])
def test_a_scale_below_one_is_refused(scale: int) -> None:
    with pytest.raises(UsageError, match="scale must be a positive whole number"):
        counts(scale=scale)
    with pytest.raises(UsageError):
        next(generate(scale=scale))


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def digest(texts: dict[str, str]) -> str:
        return hashlib.sha256("".join(texts.values()).encode()).hexdigest()

    first, again = read_all(scale=1), read_all(scale=1)
    assert digest(first) == digest(again)
    assert digest(read_all(scale=1, seed=7)) != digest(first)


def test_a_table_left_unread_does_not_change_the_next() -> None:
    full = read_all(scale=1)
    skipped = {}
    for table in generate(scale=1):
        if table.table in ("customers", "order_items"):
            next(table.chunks)  # read one chunk, abandon the rest
        else:
            skipped[table.table] = "".join(table.chunks)
    assert skipped["orders"] == full["orders"]
    assert skipped["customer_insights"] == full["customer_insights"]


def test_every_foreign_key_points_at_an_existing_row(scale_1: Tables) -> None:
    for child, column, parent in FOREIGN_KEYS:
        allowed = {row["id"] for row in scale_1[parent]} | {None}
        dangling = [r[column] for r in scale_1[child] if r[column] not in allowed]
        assert dangling == [], f"{child}.{column} -> {parent}"
    # A migration must keep the NULL ones NULL, so there must be some.
    assert any(r["supplier_id"] is None for r in scale_1["products"])


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("suppliers", ("id",)),
        ("products", ("slug",)),
        ("product_variants", ("sku",)),
        ("customers", ("email",)),
        ("orders", ("order_number",)),
        ("order_items", ("id",)),
        ("customer_insights", ("customer_id",)),
        ("product_recommendations", ("customer_id", "product_id")),
    ],
)
def test_unique_keys_are_unique(scale_1: Tables, table: str, columns: tuple[str, ...]) -> None:
    keys = Counter(tuple(row[c] for c in columns) for row in scale_1[table])
    assert [k for k, n in keys.items() if n > 1] == []


def test_text_ids_look_like_prisma_cuids(scale_1: Tables) -> None:
    for table in ("suppliers", "products", "customers", "orders", "measurements"):
        assert all(_CUID.fullmatch(str(row["id"])) for row in scale_1[table]), table


def test_order_totals_are_the_sum_of_their_items(scale_1: Tables) -> None:
    subtotal: Counter[str] = Counter()
    for item in scale_1["order_items"]:
        cents = int(Decimal(str(item["unit_price"])) * 100) * int(str(item["quantity"]))
        subtotal[str(item["order_id"])] += cents - int(Decimal(str(item["discount"])) * 100)
    for order in scale_1["orders"]:
        parts = [int(Decimal(str(order[c])) * 100) for c in ("subtotal", "tax", "shipping")]
        assert parts[0] == subtotal[str(order["id"])]
        assert sum(parts) == int(Decimal(str(order["total"])) * 100)


def test_insights_agree_with_the_orders(scale_1: Tables) -> None:
    spent: Counter[str] = Counter()
    placed: Counter[str] = Counter()
    for order in scale_1["orders"]:
        placed[str(order["customer_id"])] += 1
        if order["status"] not in ("cancelled", "refunded"):
            spent[str(order["customer_id"])] += int(Decimal(str(order["total"])) * 100)
    for row in scale_1["customer_insights"]:
        customer = str(row["customer_id"])
        assert int(Decimal(str(row["lifetime_value"])) * 100) == spent[customer]
        assert int(str(row["order_count"])) == placed[customer]
        assert (row["last_order_at"] is None) == (placed[customer] == 0)


def test_the_awkward_customers_come_first_exactly_as_written(scale_1: Tables) -> None:
    stored = [(r["first_name"], r["last_name"]) for r in scale_1["customers"]]
    assert stored[: len(AWKWARD_NAMES)] == list(AWKWARD_NAMES)
    assert ("\\N", "Literal") in stored  # two characters, not NULL


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("customers", "last_name"),
        ("customers", "phone"),
        ("customers", "date_of_birth"),
        ("products", "collection_id"),
        ("product_variants", "weight_grams"),
        ("orders", "shipping_address"),
        ("orders", "shipped_at"),
        ("measurements", "hip_cm"),
        ("customer_insights", "average_order_value"),
        ("appointments", "stylist"),
    ],
)
def test_nullable_columns_hold_nulls_and_values(scale_1: Tables, table: str, column: str) -> None:
    values = [row[column] for row in scale_1[table]]
    assert None in values
    assert any(v is not None for v in values)


def test_numeric_extremes_are_present(scale_1: Tables) -> None:
    prices = {row["price"] for row in scale_1["product_variants"]}
    assert {"0.00", "99999999.99"} <= prices
    assert "2147483647" in {row["loyalty_points"] for row in scale_1["customers"]}
    assert "9999.9" in {row["chest_cm"] for row in scale_1["measurements"]}


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\tb", "a\\tb"),
        ("line\nbreak", "line\\nbreak"),
        ("cr\rlf", "cr\\rlf"),
        ("C:\\path", "C:\\\\path"),
        ("\\N", "\\\\N"),
        ("", ""),
        ("Zoë 王 🤵", "Zoë 王 🤵"),
        (None, "\\N"),
    ],
)
def test_copy_escape_of_tricky_strings(raw: str | None, escaped: str) -> None:
    assert copy_escape(raw) == escaped
    assert decode_field(escaped) == raw


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_copy_escape_round_trips_any_text(value: str) -> None:
    escaped = copy_escape(value)
    assert not {"\t", "\n", "\r"} & set(escaped)
    assert decode_field(escaped) == value


def test_copy_escape_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        copy_escape("nul\x00byte")
