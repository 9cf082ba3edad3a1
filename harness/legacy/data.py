"""Rows for the legacy database, made up the same way every time, as COPY text.

The plan quotes 37 products, 544 variants and 3,369 customers: scale 1 has
exactly those, scale N has N times every count. The same seed and scale give
the same bytes (seeded ``random.Random``, no wall clock), so a failure is replayable.

Speed shapes this module: scale 100 is 3.6 million rows and must be in within a
minute. Each table is a generator of large text chunks that the loader hands to
COPY as they come, so the server parses one chunk while Python formats the next;
values come from ``random()`` and integer arithmetic, vocabularies are escaped once.

The data is awkward on purpose: tabs, newlines, backslashes, the two characters
``\\N``, an empty string, emoji and other scripts in names; NULLs in every nullable
column; prices of 0.00 and 99,999,999.99; a chest measured at 9999.9 cm.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from harness.errors import UsageError

__all__ = [
    "AWKWARD_NAMES",
    "COLUMNS",
    "DEFAULT_SEED",
    "FOREIGN_KEYS",
    "LEGACY_COUNTS",
    "TableCopy",
    "copy_escape",
    "counts",
    "generate",
]

DEFAULT_SEED: Final = 20240917

#: Rows per table at scale 1, in the order the tables depend on each other.
# fmt: off
LEGACY_COUNTS: Final[Mapping[str, int]] = MappingProxyType({
    "suppliers": 8, "collections": 12, "products": 37, "product_variants": 544,
    "customers": 3369, "orders": 5054, "order_items": 12635, "appointments": 1685,
    "measurements": 2358, "customer_insights": 3369, "product_recommendations": 6738,
})
# fmt: on

#: (child table, column, parent table): every foreign key schema.sql declares; the
#: generator keeps each of them, and a scenario checks the catalog says the same.
FOREIGN_KEYS: Final[tuple[tuple[str, str, str], ...]] = (
    ("products", "supplier_id", "suppliers"),
    ("products", "collection_id", "collections"),
    ("product_variants", "product_id", "products"),
    ("orders", "customer_id", "customers"),
    ("order_items", "order_id", "orders"),
    ("order_items", "variant_id", "product_variants"),
    ("appointments", "customer_id", "customers"),
    ("measurements", "customer_id", "customers"),
    ("customer_insights", "customer_id", "customers"),
    ("product_recommendations", "customer_id", "customers"),
    ("product_recommendations", "product_id", "products"),
)

#: (first_name, last_name) of the first customers, exactly as stored.
AWKWARD_NAMES: Final[tuple[tuple[str, str | None], ...]] = (
    ("Tab\tbed", "O'Brien"),
    ("Line\nBreak", "Smith-Jones"),
    ("Back\\slash", "C:\\Users\\kct"),
    ("\\N", "Literal"),
    ("", "Empty-First-Name"),
    ("Carriage\rReturn", None),
    ("Zoë", "Ångström"),
    ("王", "小明"),
    ("🤵🏽", "Groom 💍"),
    ("Robert'); DROP TABLE customers;--", "Tables"),
    ("Ł" * 120, "Łukasiewicz"),
)

_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_ROWS_PER_CHUNK: Final = 8192
_EPOCH: Final = dt.date(2019, 1, 1)
_SPAN_DAYS: Final = 6 * 365
_SPAN: Final = _SPAN_DAYS * 86400
_NULL: Final = "\\N"


def copy_escape(value: str | None) -> str:
    """One value in COPY text format; PostgreSQL text cannot hold NUL, so neither can this."""
    if value is None:
        return _NULL
    if "\x00" in value:
        raise ValueError("PostgreSQL text values cannot contain NUL (\\x00)")
    return value.translate(_COPY_ESCAPES)


def counts(*, scale: int = 1) -> dict[str, int]:
    """Rows each table gets at ``scale``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise UsageError(f"scale must be a positive whole number, got {scale!r}; use 1 or more")
    return {table: n * scale for table, n in LEGACY_COUNTS.items()}


@dataclass(frozen=True)
class TableCopy:
    """One table's rows: ``chunks`` yields COPY text, whole lines, ``rows`` lines in all."""

    table: str
    columns: tuple[str, ...]
    rows: int
    chunks: Iterator[str]


def _esc(*words: str) -> tuple[str, ...]:
    return tuple(copy_escape(w) for w in words)


def _cents(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


# fmt: off
_SUPPLIERS: Final = _esc(
    "Loro Piana", "Vitale Barberis Canonico", "Holland & Sherry", "Reda 1865",
    "Thomas Mason", "Ermenegildo Zegna", "Dormeuil", "Scabal",
)
_COUNTRIES: Final = ("IT", "IT", "GB", "IT", "IT", "IT", "FR", "BE")
_COLLECTIONS: Final = _esc(
    "Wedding Season", "Black Tie", "Prom Night", "Spring Linen", "Fall Tweed", "Executive",
    "Summer Seersucker", "Holiday Velvet", "Groomsmen", "Essentials", "Kentucky Derby",
    "Créateur Édition",
)
_SEASONS: Final = ("SS23", "FW23", "SS24", "FW24", _NULL)
# 37 categories, one per product at scale 1: the catalogue's real proportions.
_CATEGORIES: Final = (
    ("suit",) * 12 + ("tuxedo",) * 6 + ("shirt",) * 8 + ("blazer",) * 4
    + ("vest", "vest", "tie", "tie", "bowtie", "shoes", "shoes")
)
_NOUNS: Final = {
    "suit": "Suit", "tuxedo": "Tuxedo", "shirt": "Dress Shirt", "blazer": "Blazer",
    "vest": "Vest", "tie": "Silk Tie", "bowtie": "Bow Tie", "shoes": "Oxford Shoes",
}
_BASE_PRICE: Final = {
    "suit": (39900, 129900), "tuxedo": (49900, 149900), "shirt": (6900, 19900),
    "blazer": (29900, 79900), "vest": (7900, 19900), "tie": (4900, 12900),
    "bowtie": (3900, 8900), "shoes": (14900, 44900),
}
_VARIANT_WEIGHT: Final = {"suit": 3, "tuxedo": 2, "shirt": 2, "blazer": 2}
_JACKET_SIZES: Final = tuple(f"{n}{c}" for n in range(36, 54, 2) for c in "SRL")
_SIZES: Final = {
    "suit": _JACKET_SIZES, "tuxedo": _JACKET_SIZES, "blazer": _JACKET_SIZES,
    "shirt": tuple(f"{n}/{s}" for n in ("14.5", "15", "16", "16.5", "17") for s in (32, 34, 35)),
    "vest": ("S", "M", "L", "XL", "XXL"), "shoes": tuple(str(n / 2) for n in range(16, 28)),
}
_FITS: Final = ("Slim", "Modern", "Classic")
_LINES: Final = ("Signature", "Essential", "Luxe", "Heritage", "Milano")
_COLORS: Final = _esc(
    "Navy", "Charcoal", "Black", "Midnight Blue", "Light Grey", "Tan", "Burgundy", "Ivory",
    "Sage", "Bordeaux Crème", "Powder Blue", "Emerald",
)
_FABRICS: Final = ("Super 120s Wool", "Linen", "Cotton Poplin", "Velvet", "Silk", _NULL)
_DESCRIPTIONS: Final = (*_esc(
    "Half-canvassed, notch lapel, side vents.", "Satin peak lapel.\nPairs with our bow ties.",
    "Machine washable\t(cold)", "Made in Biella — 100% wool",
), _NULL)
_FIRST: Final = _esc(
    "James", "Michael", "David", "Marcus", "Andre", "Luis", "José", "Wei", "Rahul", "Mohammed",
    "Kwame", "Søren", "François", "Björn", "Darnell", "Tyler", "Ethan", "Noah", "Liam",
    "Mateo", "Hiroshi", "Dmitri", "Chinedu", "Sean", "Patrick",
)
_LAST: Final = _esc(
    "Johnson", "Williams", "Brown", "García", "Nguyễn", "Smith", "Okafor", "Müller", "Kowalski",
    "Patel", "O'Connor", "Zhang", "Haddad", "Rossi", "Dubois", "Jensen", "Mensah", "Ivanov",
    "Tanaka", "Reyes",
)
_DOMAINS: Final = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "kc.rr.com")
_STORES: Final = ("Kansas City Plaza", "Overland Park", "Online", _NULL)
_STATUSES: Final = (
    (0.55, "delivered"), (0.65, "shipped"), (0.70, "fulfilled"), (0.78, "paid"),
    (0.85, "pending"), (0.95, "cancelled"), (1.01, "refunded"),
)
_CITIES: Final = (
    ("Kansas City", "MO", "641"), ("Overland Park", "KS", "662"), ("St. Louis", "MO", "631"),
    ("Chicago", "IL", "606"), ("Dallas", "TX", "752"), ("Montréal", "QC", "H2X"),
)
_NOTES: Final = _esc(
    "Gift wrap, please", "Leave with\tconcierge", "Deliver after 5pm\nRing twice",
    "Path C:\\orders\\rush", "\\N", "Wedding on Saturday!! 🎉",
)
_STYLISTS: Final = (*_esc("Aaron", "Bianca", "Chloé", "Desmond", "Emeka"), _NULL)
_KINDS: Final = ("fitting", "fitting", "consultation", "alteration", "wedding_party", "pickup")
_REASONS: Final = ("bought_together", "viewed", "stylist_pick", "similar_customers")
# fmt: on


class _Generator:
    """The rows of every table, from one random stream, each table after the ones it needs."""

    def __init__(self, *, scale: int, seed: int) -> None:
        self.n = counts(scale=scale)
        self.rng = random.Random(seed)
        self.days = [(_EPOCH + dt.timedelta(days=d)).isoformat() for d in range(_SPAN_DAYS + 30)]
        self.births = [
            (dt.date(1950, 1, 1) + dt.timedelta(days=d)).isoformat() for d in range(20500)
        ]
        self.clock = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
        self.ids = {table: _ids(n, salt=i) for i, (table, n) in enumerate(self.n.items())}
        n_customers = self.n["customers"]
        self.spent = [0] * n_customers
        self.order_count = [0] * n_customers
        self.last_order = [-1] * n_customers
        self.subtotals = [0] * self.n["orders"]
        self.variant_price: list[int] = []
        self.orderable: list[str] = []
        self.product_color: list[str] = []

    def stamp(self, second: int) -> str:
        day, rest = divmod(second, 86400)
        return f"{self.days[day]} {self.clock[rest // 60]}:{rest % 60:02d}+00"

    def rows(self, table: str) -> Iterator[str]:
        """Chunks of ``table``; a later table may rely on what an earlier one recorded."""
        out: list[str] = []
        for line in getattr(self, f"_{table}")():
            out.append(line)
            if len(out) == _ROWS_PER_CHUNK:
                yield "".join(out)
                out.clear()
        if out:
            yield "".join(out)

    def _suppliers(self) -> Iterator[str]:
        rnd, stamp = self.rng.random, self.stamp
        for i, sid in enumerate(self.ids["suppliers"]):
            base = _SUPPLIERS[i % len(_SUPPLIERS)]
            name = base if i < len(_SUPPLIERS) else f"{base} {i // len(_SUPPLIERS) + 1}"
            country = _NULL if i == 3 else _COUNTRIES[i % len(_COUNTRIES)]
            email = _NULL if rnd() < 0.2 else f"orders{i}@supplier{i % 8}.example"
            lead = _NULL if rnd() < 0.2 else str(7 + int(rnd() * 84))
            t = stamp(int(rnd() * _SPAN * 0.1))
            yield f"{sid}\t{name}\t{country}\t{email}\t{lead}\t{t}\t{t}\n"

    def _collections(self) -> Iterator[str]:
        rnd, stamp = self.rng.random, self.stamp
        for i, cid in enumerate(self.ids["collections"]):
            name = _COLLECTIONS[i % len(_COLLECTIONS)]
            slug = f"collection-{i}"
            desc = _NULL if rnd() < 0.3 else _DESCRIPTIONS[int(rnd() * 4)]
            season = _SEASONS[int(rnd() * len(_SEASONS))]
            active = "f" if rnd() < 0.15 else "t"
            t = stamp(int(rnd() * _SPAN * 0.5))
            yield f"{cid}\t{name}\t{slug}\t{desc}\t{season}\t{active}\t{t}\t{t}\n"

    def _products(self) -> Iterator[str]:
        rnd, stamp = self.rng.random, self.stamp
        suppliers, collections = self.ids["suppliers"], self.ids["collections"]
        for i, pid in enumerate(self.ids["products"]):
            category = _CATEGORIES[i % len(_CATEGORIES)]
            color = _COLORS[int(rnd() * len(_COLORS))]
            self.product_color.append(color)
            name = f"{color} {_LINES[i % len(_LINES)]} {_NOUNS[category]}"
            supplier = _NULL if rnd() < 0.07 else suppliers[int(rnd() * len(suppliers))]
            collection = _NULL if rnd() < 0.2 else collections[int(rnd() * len(collections))]
            fabric = _FABRICS[int(rnd() * len(_FABRICS))]
            desc = _DESCRIPTIONS[int(rnd() * len(_DESCRIPTIONS))]
            low, high = _BASE_PRICE[category]
            price = _cents(low + int(rnd() * (high - low) / 100) * 100)
            active = "f" if rnd() < 0.1 else "t"
            t = stamp(int(rnd() * _SPAN * 0.8))
            yield (
                f"{pid}\t{supplier}\t{collection}\t{name}\tproduct-{i}\t{category}\t"
                f"{fabric}\t{desc}\t{price}\t{active}\t{t}\t{t}\n"
            )

    def _product_variants(self) -> Iterator[str]:
        rng = self.rng
        rnd, stamp, products = rng.random, self.stamp, self.ids["products"]
        categories = [_CATEGORIES[i % len(_CATEGORIES)] for i in range(len(products))]
        per_product = [4] * len(products)
        weights = [_VARIANT_WEIGHT.get(c, 1) for c in categories]
        extra = self.n["product_variants"] - 4 * len(products)
        for p in rng.choices(range(len(products)), weights=weights, k=extra):
            per_product[p] += 1
        ids = iter(self.ids["product_variants"])
        for p, pid in enumerate(products):
            category = categories[p]
            sizes = _SIZES.get(category, ("One Size",))
            base = int(_BASE_PRICE[category][0] + rnd() * 20000)
            color = self.product_color[p]
            for k in range(per_product[p]):
                vid = next(ids)
                size = sizes[k % len(sizes)]
                fit = _FITS[(k // len(sizes)) % 3] if len(sizes) > 1 else _NULL
                price = base + (2000 if size.endswith("L") else 0)
                if p == 0 and k == 0:
                    price = 0  # a free swatch sample
                elif p == 1 and k == 0:
                    price = 9999999999  # numeric(10,2)'s largest: a bespoke placeholder
                else:
                    self.orderable.append(vid)
                    self.variant_price.append(price)
                stock = int(rnd() * 61)
                weight = _NULL if rnd() < 0.25 else str(200 + int(rnd() * 2300))
                t = stamp(int(rnd() * _SPAN))
                yield (
                    f"{vid}\t{pid}\tKCT-{p:06d}-{k:03d}\t{size}\t{fit}\t{color}\t"
                    f"{_cents(price)}\t{stock}\t{weight}\t{t}\t{t}\n"
                )

    def _customers(self) -> Iterator[str]:
        rnd, stamp, births = self.rng.random, self.stamp, self.births
        n_first, n_last, n_births = len(_FIRST), len(_LAST), len(self.births)
        for i, cid in enumerate(self.ids["customers"]):
            if i < len(AWKWARD_NAMES):
                first, last = (copy_escape(v) for v in AWKWARD_NAMES[i])
                email = f"awkward.{i}@example.com"
            else:
                f, la = int(rnd() * n_first), int(rnd() * n_last)
                first, last = _FIRST[f], (_NULL if rnd() < 0.02 else _LAST[la])
                email = f"customer{i}.{f}.{la}@{_DOMAINS[i % 5]}"
            phone = _NULL if rnd() < 0.35 else f"+1-816-555-{int(rnd() * 10000):04d}"
            birth = _NULL if rnd() < 0.45 else births[int(rnd() * n_births)]
            opt_in = "t" if rnd() < 0.4 else "f"
            points = "2147483647" if i == len(AWKWARD_NAMES) else str(int(rnd() * rnd() * 5000))
            store = _STORES[int(rnd() * 4)]
            t = stamp(int(rnd() * _SPAN))
            yield (
                f"{cid}\t{email}\t{first}\t{last}\t{phone}\t{birth}\t{opt_in}\t"
                f"{points}\t{store}\t{t}\t{t}\n"
            )

    def _order_items(self) -> Iterator[str]:
        rng, subtotals = self.rng, self.subtotals
        rnd, orders = rng.random, self.ids["orders"]
        per_order = [1] * len(orders)
        for o in rng.choices(range(len(orders)), k=self.n["order_items"] - len(orders)):
            per_order[o] += 1
        orderable, prices, n_orderable = self.orderable, self.variant_price, len(self.orderable)
        item_id = 0
        for o, oid in enumerate(orders):
            for _ in range(per_order[o]):
                item_id += 1
                v = int(rnd() * n_orderable)
                r = rnd()
                qty = 1 if r < 0.8 else 2 if r < 0.95 else 3
                price = prices[v]
                discount = price * qty // 10 if rnd() < 0.1 else 0
                subtotals[o] += price * qty - discount
                yield (
                    f"{item_id}\t{oid}\t{orderable[v]}\t{qty}\t"
                    f"{_cents(price)}\t{_cents(discount)}\n"
                )

    def _orders(self) -> Iterator[str]:
        rnd, stamp, customers = self.rng.random, self.stamp, self.ids["customers"]
        spent, order_count, last_order = self.spent, self.order_count, self.last_order
        n_customers = len(customers)
        for o, oid in enumerate(self.ids["orders"]):
            c = int(rnd() * n_customers)
            r = rnd()
            status = next(s for limit, s in _STATUSES if r < limit)
            placed = int(rnd() * _SPAN)
            shipped = placed + 86400 + int(rnd() * 4 * 86400)
            subtotal = self.subtotals[o]
            tax = subtotal * 885 // 10000
            shipping = 0 if subtotal >= 20000 else 1500
            total = subtotal + tax + shipping
            order_count[c] += 1
            last_order[c] = max(last_order[c], placed)
            if status not in ("cancelled", "refunded"):
                spent[c] += total
            if rnd() < 0.15:
                address = _NULL  # picked up in store
            else:
                city, region, zip3 = _CITIES[int(rnd() * len(_CITIES))]
                address = (
                    f'{{"line1": "{int(rnd() * 9000) + 100} Main St", "city": "{city}", '
                    f'"region": "{region}", "postal_code": "{zip3}{int(rnd() * 90) + 10}"}}'
                )
            notes = _NOTES[int(rnd() * len(_NOTES))] if rnd() < 0.08 else _NULL
            sent = stamp(shipped) if status in ("shipped", "delivered") else _NULL
            placed_at = stamp(placed)
            yield (
                f"{oid}\t{1001 + o}\t{customers[c]}\t{status}\tUSD\t{_cents(subtotal)}\t"
                f"{_cents(tax)}\t{_cents(shipping)}\t{_cents(total)}\t{address}\t{notes}\t"
                f"{placed_at}\t{sent}\t{placed_at}\t{placed_at if sent == _NULL else sent}\n"
            )

    def _appointments(self) -> Iterator[str]:
        rnd, stamp, customers = self.rng.random, self.stamp, self.ids["customers"]
        for a in range(1, self.n["appointments"] + 1):
            customer = customers[int(rnd() * len(customers))]
            kind = _KINDS[int(rnd() * len(_KINDS))]
            at = int(rnd() * _SPAN)
            r = rnd()
            if at > _SPAN * 0.95:
                status = "scheduled"
            else:
                status = "completed" if r < 0.8 else "cancelled" if r < 0.93 else "no_show"
            minutes = (30, 45, 60, 90)[int(rnd() * 4)]
            stylist = _STYLISTS[int(rnd() * len(_STYLISTS))]
            notes = _NOTES[int(rnd() * len(_NOTES))] if rnd() < 0.1 else _NULL
            booked = stamp(max(0, at - int(rnd() * 30 * 86400)))
            yield (
                f"{a}\t{customer}\t{kind}\t{status}\t{stamp(at)}\t{minutes}\t{stylist}\t"
                f"{notes}\t{booked}\t{booked}\n"
            )

    def _measurements(self) -> Iterator[str]:
        rnd, stamp, customers = self.rng.random, self.stamp, self.ids["customers"]

        def tenths(low: int, high: int, null_share: float) -> str:
            if rnd() < null_share:
                return _NULL
            v = low * 10 + int(rnd() * (high - low) * 10)
            return f"{v // 10}.{v % 10}"

        for m, mid in enumerate(self.ids["measurements"]):
            customer = customers[int(rnd() * len(customers))]
            chest = "9999.9" if m == 0 else tenths(86, 132, 0.0)  # a typo the shop kept
            waist, hip = tenths(70, 120, 0.05), tenths(86, 130, 0.2)
            inseam, sleeve, neck = tenths(70, 90, 0.1), tenths(58, 70, 0.1), tenths(35, 48, 0.2)
            jacket = _JACKET_SIZES[int(rnd() * len(_JACKET_SIZES))]
            stylist = _STYLISTS[int(rnd() * len(_STYLISTS))]
            notes = _NOTES[int(rnd() * len(_NOTES))] if rnd() < 0.05 else _NULL
            yield (
                f"{mid}\t{customer}\t{chest}\t{waist}\t{hip}\t{inseam}\t{sleeve}\t{neck}\t"
                f"{jacket}\t{stylist}\t{notes}\t{stamp(int(rnd() * _SPAN))}\n"
            )

    def _customer_insights(self) -> Iterator[str]:
        rnd, computed = self.rng.random, self.stamp(_SPAN)
        ids, customers = self.ids["customer_insights"], self.ids["customers"]
        for c, cid in enumerate(customers):
            spent, n = self.spent[c], self.order_count[c]
            average = _cents(spent // n) if n else _NULL
            last = self.stamp(self.last_order[c]) if n else _NULL
            segment = "vip" if spent > 250000 else ("prospect", "new", "regular")[min(n, 2)]
            risk = "0" if c == 0 else "1" if c == 1 else _NULL if n == 0 else f"{rnd():.4f}"
            yield (
                f"{ids[c]}\t{cid}\t{_cents(spent)}\t{n}\t{average}\t{last}\t{segment}\t"
                f"{risk}\t{computed}\n"
            )

    def _product_recommendations(self) -> Iterator[str]:
        rng, stamp = self.rng, self.stamp
        rnd, customers, products = rng.random, self.ids["customers"], self.ids["products"]
        order = list(range(len(customers)))
        rng.shuffle(order)
        left, rec_id = self.n["product_recommendations"], 0
        for c in order:
            if left == 0:
                break
            k = min(left, 2 + int(rnd() * 7))
            left -= k
            for p in rng.sample(range(len(products)), k):
                rec_id += 1
                reason = _REASONS[int(rnd() * len(_REASONS))]
                yield (
                    f"{rec_id}\t{customers[c]}\t{products[p]}\t{rnd():.6f}\t{reason}\t"
                    f"{stamp(int(rnd() * _SPAN))}\n"
                )
        if left:
            raise AssertionError("too few customers for the recommendations asked for")


def _ids(n: int, *, salt: int) -> list[str]:
    """Prisma-cuid-shaped ids ('c' and 24 hex digits), unique without a set because
    multiplying by an odd number modulo 2**96 is a bijection, and in scattered order
    in the primary-key index, as real cuids from many clients are."""
    mul, mask, offset = 0x9E3779B97F4A7C15F39CC061, (1 << 96) - 1, (salt + 1) * 0x1F2E3D4C5B6A79
    return [f"c{(i * mul + offset) & mask:024x}" for i in range(n)]


# Each table's columns in the order its generator writes them. Order items come
# before orders because an order's totals are the sum of its items; no foreign key
# is checked until every table is in.
_COLUMN_NAMES: Final = {
    "suppliers": "id name country contact_email lead_time_days created_at updated_at",
    "collections": "id name slug description season is_active created_at updated_at",
    "products": "id supplier_id collection_id name slug category fabric description base_price"
    " is_active created_at updated_at",
    "product_variants": "id product_id sku size fit color price stock weight_grams created_at"
    " updated_at",
    "customers": "id email first_name last_name phone date_of_birth marketing_opt_in"
    " loyalty_points preferred_store created_at updated_at",
    "order_items": "id order_id variant_id quantity unit_price discount",
    "orders": "id order_number customer_id status currency subtotal tax shipping total"
    " shipping_address notes placed_at shipped_at created_at updated_at",
    "appointments": "id customer_id kind status scheduled_at duration_minutes stylist notes"
    " created_at updated_at",
    "measurements": "id customer_id chest_cm waist_cm hip_cm inseam_cm sleeve_cm neck_cm"
    " jacket_size taken_by notes taken_at",
    "customer_insights": "id customer_id lifetime_value order_count average_order_value"
    " last_order_at segment churn_risk computed_at",
    "product_recommendations": "id customer_id product_id score reason created_at",
}
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {table: tuple(names.split()) for table, names in _COLUMN_NAMES.items()}
)


def generate(*, scale: int = 1, seed: int = DEFAULT_SEED) -> Iterator[TableCopy]:
    """Every table's rows; read each table's chunks before asking for the next table.

    A table left half read is finished here before the next one starts, because
    later tables depend on what earlier ones drew from the random stream.
    """
    gen = _Generator(scale=scale, seed=seed)
    for table, columns in COLUMNS.items():
        chunks = gen.rows(table)
        yield TableCopy(table=table, columns=columns, rows=gen.n[table], chunks=chunks)
        for _ in chunks:
            pass
