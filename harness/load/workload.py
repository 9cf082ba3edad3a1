"""The traffic both architectures get: named reads and writes with weights and parameters.

One definition feeds the Locust user (through psycopg) and the pgbench
cross-check (as pgbench scripts), so the two tools measure the same queries.
:func:`workload_for` is the one seam where a plan's own workload will replace
the retailer's mix; until plans carry one, every plan gets :func:`retail_workload`.

The SQL uses the application's unqualified table names: they resolve in
``public`` on the legacy database and through the migrated database's
``search_path`` on the target, exactly as the application's queries do.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError

__all__ = ["Operation", "Workload", "retail_workload", "workload_for"]

Role = Literal["read", "write"]
_PARAM = re.compile(r"%\((\w+)\)s")
_RETURNING = re.compile(r"RETURNING\s+(.+?)\s+AS\s+previous", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One request of the application: its statements run in one transaction.

    ``statements`` use ``%(name)s`` parameters drawn from the workload's samples;
    ``%(previous)s`` is the first column of the previous statement's first row
    (an ``INSERT … RETURNING id AS previous`` feeding the next statement; the
    alias gives pgbench's ``\\gset`` the same name).
    """

    name: str
    role: Role
    weight: int
    statements: tuple[str, ...]

    def parameters(self) -> list[str]:
        found = [m for s in self.statements for m in _PARAM.findall(s)]
        return [p for p in dict.fromkeys(found) if p != "previous"]

    def pgbench_script(self, *, samples: Mapping[str, Sequence[object]]) -> str:
        """The same statements as a pgbench script.

        pgbench draws only integers, and keys may be text, so each parameter is an
        index into an array literal of (at most 100 of) its sampled values.
        """
        lines = []
        values: dict[str, str] = {}
        for name in self.parameters():
            chosen = _spread(samples[name], limit=100)
            lines.append(f"\\set {name}_i random(1, {len(chosen)})")
            values[name] = f"(ARRAY[{', '.join(_literal(v) for v in chosen)}])[:{name}_i]"
        values["previous"] = ":previous"
        many = len(self.statements) > 1
        if many:
            lines.append("BEGIN;")
        for index, statement in enumerate(self.statements):
            text = _PARAM.sub(lambda m: values[m.group(1)], statement).rstrip(";")
            feeds_next = (
                index + 1 < len(self.statements) and "%(previous)s" in self.statements[index + 1]
            )
            if feeds_next:
                # \\gset names the variable after the column ("AS previous") and pgbench
                # substitutes it unquoted: quote it in SQL, so text keys work as well.
                text = _RETURNING.sub(r"RETURNING quote_literal(\1) AS previous", text)
            lines.append(text + (" \\gset" if feeds_next else ";"))
        if many:
            lines.append("END;")
        return "\n".join(lines) + "\n"


def _spread(values: Sequence[object], *, limit: int) -> list[object]:
    step = max(1, len(values) // limit)
    return list(values[::step][:limit])


def _literal(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True, kw_only=True)
class Workload:
    """Operations and the queries that sample their parameters' values once per instance."""

    name: str
    operations: tuple[Operation, ...]
    #: parameter name -> a query returning candidate values (first column)
    samples: Mapping[str, str]

    def weighted(self, mix: Mapping[str, int]) -> Workload:
        """The same operations with ``mix``'s weights; every name must be one of them."""
        known = {op.name for op in self.operations}
        unknown = sorted(set(mix) - known)
        if unknown:
            raise UsageError(
                f"[mix] names {', '.join(map(repr, unknown))}, which the {self.name} workload "
                f"does not have; its operations are {', '.join(map(repr, sorted(known)))}"
            )
        operations = tuple(
            Operation(
                name=op.name, role=op.role, weight=mix.get(op.name, 0), statements=op.statements
            )
            for op in self.operations
        )
        return Workload(name=self.name, operations=operations, samples=self.samples)

    def choose(self, rng: random.Random) -> Operation:
        live = [op for op in self.operations if op.weight > 0]
        return rng.choices(live, weights=[op.weight for op in live])[0]


def retail_workload() -> Workload:
    """The retailer's mix: product pages and order history on the reader, orders on the writer."""
    return Workload(
        name="retail",
        operations=(
            Operation(
                name="product with variants",
                role="read",
                weight=6,
                statements=(
                    "SELECT p.name, v.sku, v.size, v.price, v.stock FROM products p"
                    " JOIN product_variants v ON v.product_id = p.id WHERE p.id = %(product)s",
                ),
            ),
            Operation(
                name="customer's orders",
                role="read",
                weight=3,
                statements=(
                    "SELECT order_number, status, total FROM order_summaries"
                    " WHERE customer_id = %(customer)s ORDER BY placed_at DESC LIMIT 20",
                ),
            ),
            Operation(
                name="place order",
                role="write",
                weight=1,
                statements=(
                    "INSERT INTO orders (customer_id, subtotal, total, placed_at)"
                    " VALUES (%(customer)s, 0, 0, now()) RETURNING id AS previous",
                    "INSERT INTO order_items (order_id, variant_id, quantity, unit_price)"
                    " SELECT %(previous)s, v.id, 1, v.price FROM product_variants v"
                    " WHERE v.product_id = %(product)s LIMIT 2",
                ),
            ),
        ),
        samples={
            "product": "SELECT id FROM products ORDER BY id",
            "customer": "SELECT id FROM customers ORDER BY id LIMIT 500",
        },
    )


def workload_for(plan_name: str | None = None) -> Workload:
    """The workload a comparison runs: the seam for a plan's own workload definition.

    Plans do not define their traffic yet, so every plan (and none) gets the
    retailer's mix; when they do, this returns the plan's and nothing else changes.
    """
    del plan_name
    return retail_workload()
