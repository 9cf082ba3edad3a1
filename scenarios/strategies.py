"""Hypothesis strategies for legacy contents, and settings fit for tests on a real server.

The values are the ones a migration is most likely to mangle: text with every
kind of awkward character (but never NUL, which PostgreSQL text refuses),
NULL wherever a column allows it, numbers at the bounds of their type and of
their CHECK, dates and timestamps at the ends of what PostgreSQL accepts
(4713 BC, 294276 AD, ±infinity), and values wide enough to be TOASTed.

Values are given to ``COPY ... FROM STDIN`` in text format, so a few extremes
that Python cannot represent (a BC date, the year 294276, infinity) are the
PostgreSQL text of the value; the server parses them by the column's type.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from harness.testing.fix_cluster import in_ci

__all__ = [
    "LEGACY_COPY_ORDER",
    "SEQUENCES",
    "LegacyContents",
    "database_settings",
    "legacy_contents",
    "money",
    "pg_text",
]

Row = dict[str, object]

# Strings that have broken escaping, quoting or normalisation somewhere before.
AWKWARD = (
    "",
    " ",
    "\\",
    "\\N",
    "'",
    "''",
    '"',
    "\t",
    "\n",
    "\r\n",
    "e\u0301",  # e + combining acute: not the same text as "é"
    "é",
    "🤵🏽",
    "👨\u200d👩\u200d👧",  # one grapheme, five code points
    "\u200b",
    "\ufeff",
    "%s",
    "$$",
    "NULL",
    "x'); DROP TABLE t;--",
)
# Anything UTF-8 can carry (so no lone surrogates) except NUL.
_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
# Wide values are made from a seed rather than drawn character by character: a
# 100 KB draw would overrun hypothesis's buffer. Random characters from a large
# alphabet do not compress, so the value is stored out of line in the TOAST table.
_WIDE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\\'\"%$"
    "éüßøΩЖ王小明😀🤵🏽\u0301\u200b"
)

UTC = dt.UTC
_MIN_TS = dt.datetime(1, 1, 1, tzinfo=UTC)
_MAX_TS = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_OFFSETS = (dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=12, minutes=30)))
# PostgreSQL's own limits for timestamptz and date, beyond Python's datetime.
_PG_TIMESTAMPS = (
    "4713-01-01 00:00:00+00 BC",
    "0001-12-31 23:59:59.999999+00 BC",
    "294276-12-31 23:59:59.999999+00",
    "infinity",
    "-infinity",
)
_PG_DATES = ("4713-01-01 BC", "5874897-12-31", "infinity", "-infinity")

INT4 = (-(2**31), 2**31 - 1)
INT8_MAX = 2**63 - 1
ORDER_STATUSES = ("pending", "paid", "fulfilled", "shipped", "delivered", "cancelled", "refunded")
APPOINTMENT_KINDS = ("consultation", "fitting", "alteration", "wedding_party", "pickup")

#: The serial and identity columns: (table, column, the largest value of the sequence's type).
SEQUENCES = (
    ("orders", "order_number", INT4[1]),
    ("order_items", "id", INT8_MAX),
    ("appointments", "id", INT8_MAX),
    ("product_recommendations", "id", INT8_MAX),
)

_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)

#: Tables in an order that loads parents before children.
LEGACY_COPY_ORDER = (
    "suppliers",
    "collections",
    "products",
    "product_variants",
    "customers",
    "orders",
    "order_items",
    "appointments",
    "measurements",
    "customer_insights",
    "product_recommendations",
)


def database_settings(*, max_examples: int, **extra: Any) -> settings:
    """Settings for examples that each create, migrate and drop a database.

    No deadline: an example takes a few tenths of a second on a quiet machine and
    several times that next to other tests, and that is the server, not the code.
    In CI the examples are the same on every run (derandomize), nothing is kept
    between runs, and a failure is reported as found, unshrunk: at a few tenths of
    a second per database, shrinking takes minutes (locally, hypothesis stops it
    after five and replays the result from its example database on the next run).
    """
    if in_ci():
        ci = {"derandomize": True, "database": None, "phases": _NO_SHRINK}
        extra = {**ci, **extra}
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )


def pg_text(*, min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[str]:
    """Text PostgreSQL accepts, awkward strings first."""
    fitting = [s for s in AWKWARD if min_size <= len(s) <= max_size]
    drawn = st.text(_CHARACTERS, min_size=min_size, max_size=max_size)
    return st.one_of(st.sampled_from(fitting), drawn) if fitting else drawn


def _wide(size: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(_WIDE_ALPHABET, k=size))


def wide_text() -> st.SearchStrategy[str]:
    """10-100 KB of incompressible text: stored out of line (TOAST)."""
    return st.builds(_wide, st.integers(10_000, 100_000), st.integers(0, 2**32 - 1))


def long_text() -> st.SearchStrategy[str | None]:
    """A nullable free-text column: NULL, awkward, or wide."""
    return st.one_of(st.none(), pg_text(), wide_text())


def _nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def money(
    *, precision: int, scale: int = 2, minimum: Decimal | None = None
) -> st.SearchStrategy[Decimal]:
    """numeric(precision, scale) values, its bounds and zero always likely."""
    top = Decimal(10 ** (precision - scale)) - Decimal(1).scaleb(-scale)
    low = -top if minimum is None else minimum
    bounds = st.sampled_from(sorted({low, Decimal(0), top}))
    return st.one_of(
        bounds,
        st.decimals(
            min_value=low, max_value=top, places=scale, allow_nan=False, allow_infinity=False
        ),
    )


def timestamps() -> st.SearchStrategy[object]:
    """timestamptz from 4713 BC to 294276 AD and ±infinity."""
    return st.one_of(
        st.sampled_from([_MIN_TS, _MAX_TS, *_PG_TIMESTAMPS]),
        st.datetimes(
            min_value=_MIN_TS.replace(tzinfo=None),
            max_value=_MAX_TS.replace(tzinfo=None),
            # psycopg sends the offset; the server stores UTC (0001-01-01+14 is 1 BC).
            timezones=st.sampled_from([UTC, *_OFFSETS]),
        ),
    )


def dates() -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from([dt.date.min, dt.date.max, *_PG_DATES]),
        st.dates(),
    )


def int4(*, minimum: int = INT4[0]) -> st.SearchStrategy[int]:
    bounds = st.sampled_from(sorted({minimum, max(minimum, 0), INT4[1]}))
    return st.one_of(bounds, st.integers(minimum, INT4[1]))


def floats() -> st.SearchStrategy[float]:
    """double precision, NaN, ±infinity and -0.0 included."""
    return st.floats(allow_nan=True, allow_infinity=True)


def _json() -> st.SearchStrategy[Jsonb]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), pg_text(max_size=12))
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(pg_text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )
    return st.dictionaries(pg_text(max_size=8), values, max_size=4).map(Jsonb)


def key_text() -> st.SearchStrategy[str]:
    """An indexed text value: short, since a btree entry must fit in a third of a page."""
    return pg_text(max_size=16)


@dataclass(frozen=True)
class LegacyContents:
    """Rows per legacy table (column → value), foreign keys consistent; any table may be empty.

    ``sequences`` gives the state of the serial and identity sequences after
    loading, ``(last_value, is_called)``, or None for a sequence never used.
    """

    rows: dict[str, list[Row]]
    sequences: dict[tuple[str, str], tuple[int, bool] | None]

    # The printer's protocol (IPython's, vendored by hypothesis) passes ``cycle`` by position.
    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # noqa: FBT001
        """How hypothesis prints a failing example: wide values by size, not 100 KB of text."""
        p.text("LegacyContents(rows=")
        p.pretty(
            {
                t: [{c: _Short.of(v) for c, v in r.items()} for r in rs]
                for t, rs in self.rows.items()
            }
        )
        p.text(", sequences=")
        p.pretty(self.sequences)
        p.text(")")


class _Short:
    """A wide value in a report: its length and first characters."""

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, value: object) -> object:
        return cls(value) if isinstance(value, str) and len(value) > 200 else value

    def __repr__(self) -> str:
        return f"<{len(self.text):,} characters: {self.text[:40]!r}…>"


def _key(columns: tuple[str, ...]) -> Callable[[Row], object]:
    return lambda row: tuple(row[c] for c in columns)


def _table(
    draw: st.DrawFn,
    columns: dict[str, st.SearchStrategy[Any]],
    *,
    sizes: tuple[int, int],
    unique: Sequence[tuple[str, ...]] = (("id",),),
) -> list[Row]:
    """Rows whose UNIQUE columns (each tuple one constraint) are unique, as the table demands."""
    if any(strategy.is_empty for strategy in columns.values()):
        return []  # a child table whose parent table was drawn empty
    keys = tuple(_key(u) for u in unique)
    rows = st.lists(
        st.fixed_dictionaries(columns), min_size=sizes[0], max_size=sizes[1], unique_by=keys
    )
    return draw(rows)


def _of(values: Sequence[object]) -> st.SearchStrategy[object]:
    """One of the parents drawn; with none, no child row can be drawn either."""
    return st.sampled_from(list(values)) if values else st.nothing()


def _ids(rows: list[Row]) -> list[object]:
    return [r["id"] for r in rows]


@st.composite
def legacy_contents(draw: st.DrawFn, *, max_rows: int = 4) -> LegacyContents:
    """Contents of all eleven legacy tables, children referencing the parents drawn."""
    # Half the examples fill every table: left alone, the children of a parent
    # table drawn empty are empty too, and all eleven would rarely hold rows at once.
    n = (draw(st.sampled_from([0, 1])), max_rows)
    price = money(precision=10, minimum=Decimal(0))  # CHECK (price >= 0)
    amount = money(precision=12)  # no CHECK: negative amounts are legal
    measure = _nullable(money(precision=5, scale=1))
    rows: dict[str, list[Row]] = {}
    suppliers = rows["suppliers"] = _table(
        draw,
        {
            "id": key_text(),
            "name": pg_text(),
            "country": _nullable(st.text(_CHARACTERS, max_size=2)),
            "contact_email": _nullable(pg_text()),
            "lead_time_days": _nullable(int4()),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
    )
    collections = rows["collections"] = _table(
        draw,
        {
            "id": key_text(),
            "name": pg_text(),
            "slug": key_text(),
            "description": long_text(),
            "season": _nullable(pg_text()),
            "is_active": st.booleans(),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("slug",)],
    )
    products = rows["products"] = _table(
        draw,
        {
            "id": key_text(),
            "supplier_id": _nullable(_of(_ids(suppliers))),
            "collection_id": _nullable(_of(_ids(collections))),
            "name": pg_text(),
            "slug": key_text(),
            "category": pg_text(),
            "fabric": _nullable(pg_text()),
            "description": long_text(),
            "base_price": price,
            "is_active": st.booleans(),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("slug",)],
    )
    variants = rows["product_variants"] = _table(
        draw,
        {
            "id": key_text(),
            "product_id": _of(_ids(products)),
            "sku": key_text(),
            "size": pg_text(),
            "fit": _nullable(pg_text()),
            "color": pg_text(),
            "price": price,
            "stock": int4(),
            "weight_grams": _nullable(int4()),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("sku",)],
    )
    customers = rows["customers"] = _table(
        draw,
        {
            "id": key_text(),
            "email": key_text(),
            "first_name": pg_text(),
            "last_name": _nullable(pg_text()),
            "phone": _nullable(pg_text()),
            "date_of_birth": _nullable(dates()),
            "marketing_opt_in": st.booleans(),
            "loyalty_points": int4(),
            "preferred_store": _nullable(pg_text()),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("email",)],
    )
    customer = _of(_ids(customers))
    orders = rows["orders"] = _table(
        draw,
        {
            "id": key_text(),
            "order_number": int4(),
            "customer_id": customer,
            "status": st.sampled_from(ORDER_STATUSES),
            "currency": st.text(_CHARACTERS, max_size=3),
            "subtotal": amount,
            "tax": amount,
            "shipping": amount,
            "total": amount,
            "shipping_address": _nullable(_json()),
            "notes": long_text(),
            "placed_at": timestamps(),
            "shipped_at": _nullable(timestamps()),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("order_number",)],
    )
    rows["order_items"] = _table(
        draw,
        {
            "id": st.integers(1, INT8_MAX),
            "order_id": _of(_ids(orders)),
            "variant_id": _of(_ids(variants)),
            "quantity": int4(minimum=1),  # CHECK (quantity > 0)
            "unit_price": money(precision=10),
            "discount": money(precision=10),
        },
        sizes=n,
    )
    rows["appointments"] = _table(
        draw,
        {
            "id": st.integers(1, INT8_MAX),
            "customer_id": customer,
            "kind": st.sampled_from(APPOINTMENT_KINDS),
            "status": pg_text(),
            "scheduled_at": timestamps(),
            "duration_minutes": int4(),
            "stylist": _nullable(pg_text()),
            "notes": long_text(),
            "created_at": timestamps(),
            "updated_at": timestamps(),
        },
        sizes=n,
    )
    rows["measurements"] = _table(
        draw,
        {
            "id": key_text(),
            "customer_id": customer,
            **{m: measure for m in ("chest_cm", "waist_cm", "hip_cm", "inseam_cm")},
            **{m: measure for m in ("sleeve_cm", "neck_cm")},
            "jacket_size": _nullable(pg_text()),
            "taken_by": _nullable(pg_text()),
            "notes": long_text(),
            "taken_at": timestamps(),
        },
        sizes=n,
    )
    rows["customer_insights"] = _table(
        draw,
        {
            "id": key_text(),
            "customer_id": customer,
            "lifetime_value": money(precision=14),
            "order_count": int4(),
            "average_order_value": _nullable(amount),
            "last_order_at": _nullable(timestamps()),
            "segment": pg_text(),
            "churn_risk": _nullable(floats()),
            "computed_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("customer_id",)],
    )
    rows["product_recommendations"] = _table(
        draw,
        {
            "id": st.integers(1, INT8_MAX),
            "customer_id": customer,
            "product_id": _of(_ids(products)),
            "score": floats(),
            "reason": pg_text(),
            "created_at": timestamps(),
        },
        sizes=n,
        unique=[("id",), ("customer_id", "product_id")],
    )
    sequences: dict[tuple[str, str], tuple[int, bool] | None] = {}
    for table, column, top in SEQUENCES:
        state = st.tuples(st.one_of(st.just(top), st.integers(1, top)), st.booleans())
        sequences[table, column] = draw(_nullable(state))
    return LegacyContents(rows=rows, sequences=sequences)
