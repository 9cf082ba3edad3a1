"""The comparison's traffic: the plan's own ``[workload]``, as the load tools run it.

The gate's traffic and the load comparison must measure the same application,
so there is one definition of it, ``[workload]`` in ``plan.toml``
(:mod:`harness.plan.workload`). This module only adapts it for load: the
Locust user runs each query as an :class:`Operation` with parameters drawn
from the rows of its ``params`` query, and the pgbench cross-check runs the
same statements as scripts. A plan without a ``[workload]`` gets the gate's
simple case: a one-row read of each of its tables by bare name
(:mod:`harness.plan.default_workload`).

The SQL keeps the application's unqualified names: they resolve in ``public``
on the legacy database (the baseline) and through the migrated database's
``search_path`` (or the views the plan leaves behind) on the target, exactly as
the application's own queries do.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Literal

from harness.errors import UsageError
from harness.plan.workload import Workload as PlanWorkload
from harness.plan.workload import placeholders

__all__ = ["Operation", "Workload", "from_plan_workload", "workload_for"]

Kind = Literal["read", "write"]
#: the parameter each request gets a value of its own for (``%(token)s`` in the plan)
TOKEN = "token"
_PARAM_OR_PERCENT = re.compile(r"%%|%\((\w+)\)s")
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One named query of the plan's workload: its statements run in one transaction.

    ``statements`` use ``%(name)s`` for a column of a row of ``params``, for
    ``%(token)s`` (unique to the request) and for the columns of an earlier
    statement's ``RETURNING`` row. ``login`` is the plan role the application
    runs it as (None: the harness's own login).
    """

    name: str
    kind: Kind
    weight: int
    statements: tuple[str, ...]
    params: str | None = None
    login: str | None = None

    def returned(self) -> set[str]:
        """Names a later statement may take from an earlier statement's ``RETURNING`` row
        (or from params: :meth:`pgbench_script` gives those the params row's value)."""
        given: set[str] = set()
        for index, statement in enumerate(self.statements):
            later = {p for s in self.statements[index + 1 :] for p in placeholders(s)}
            if _RETURNING.search(statement):
                given |= later
        return given

    def pgbench_script(self, *, rows: Sequence[Mapping[str, object]]) -> str:
        """The same statements as a pgbench script, one transaction.

        pgbench draws only integers, so one index picks a params row and each
        column is that element of an array literal of (at most 100 of) the
        rows' values; the columns of one row stay together. A ``RETURNING`` row
        feeds later statements through ``\\gset``. Under ``-M extended`` pgbench
        binds variables as parameters, so text keys need no quoting.
        """
        chosen = _spread(rows, limit=100)
        lines: list[str] = []
        # pgbench's own variables: a request's token is its client and a random number
        lines.append("\\set token_n random(1, 1000000000)")
        values: dict[str, str] = {TOKEN: "('pgbench-' || :client_id || '-' || :token_n)"}
        columns = sorted({c for row in chosen for c in row})
        if chosen and columns:
            lines.append(f"\\set row_i random(1, {len(chosen)})")
        for column in columns:
            items = ", ".join(_literal(row.get(column)) for row in chosen)
            values[column] = f"(ARRAY[{items}])[:row_i]"
        fed = self.returned() - set(values)
        for name in fed:
            values[name] = f":{name}"
        lines.append("BEGIN;")
        for index, statement in enumerate(self.statements):
            missing = placeholders(statement) - set(values)
            if missing:
                raise UsageError(
                    f"workload query {self.name}: parameter(s) {', '.join(sorted(missing))} come "
                    "from neither params nor an earlier RETURNING; fix [[workload.queries]]"
                )
            # psycopg's %% is a literal %; pgbench takes the SQL as written
            text = _PARAM_OR_PERCENT.sub(
                lambda m: "%" if m.group(0) == "%%" else values[m.group(1)], statement
            )
            later = {p for s in self.statements[index + 1 :] for p in placeholders(s)}
            feeds = bool(_RETURNING.search(statement)) and bool(later & fed)
            lines.append(text + (" \\gset" if feeds else ";"))
        lines.append("END;")
        return "\n".join(lines) + "\n"


def _spread(rows: Sequence[Mapping[str, object]], *, limit: int) -> list[Mapping[str, object]]:
    step = max(1, len(rows) // limit)
    return list(rows[::step][:limit])


def _literal(value: object) -> str:
    """A SQL literal pgbench can carry in an array: numbers bare (a numeric column must
    not receive text), everything else quoted and left for the server to type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True, kw_only=True)
class Workload:
    """The plan's queries, with the weights the comparison runs them at."""

    name: str
    operations: tuple[Operation, ...]

    def weighted(self, mix: Mapping[str, int]) -> Workload:
        """``mix``'s weights, the others 0; an empty ``mix`` keeps the plan's weights."""
        if not mix:
            return self
        known = {op.name for op in self.operations}
        unknown = sorted(set(mix) - known)
        if unknown:
            raise UsageError(
                f"[mix] names {', '.join(map(repr, unknown))}, which the {self.name} workload "
                f"does not have; its queries are {', '.join(map(repr, sorted(known)))}"
            )
        operations = tuple(replace(op, weight=mix.get(op.name, 0)) for op in self.operations)
        if not any(op.weight > 0 for op in operations):
            raise UsageError(f"[mix] gives every query of the {self.name} workload weight 0")
        return Workload(name=self.name, operations=operations)

    def choose(self, rng: random.Random) -> Operation:
        live = [op for op in self.operations if op.weight > 0]
        return rng.choices(live, weights=[op.weight for op in live])[0]

    @property
    def live(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.weight > 0)


def from_plan_workload(workload: PlanWorkload, *, name: str) -> Workload:
    """The plan's ``[workload]`` (or its simple case) as operations for load."""
    return Workload(
        name=name,
        operations=tuple(
            Operation(
                name=q.name,
                kind="write" if q.kind == "write" else "read",
                weight=q.weight,
                statements=q.sql,
                params=q.params,
                login=q.role,
            )
            for q in workload.queries
        ),
    )


def workload_for(plan_dir: Path) -> Workload:
    """The workload of the plan in ``plan_dir``: the same definition the gate's traffic runs."""
    from harness.plan import load_plan
    from harness.plan.default_workload import workload_of

    plan = load_plan(plan_dir)  # a PlanError: exit 2 before any load
    return from_plan_workload(workload_of(plan), name=plan.name)
