"""Row changes a plan makes on purpose: ``[[data_changes]]`` in plan.toml.

A migration step that changes rows of a table that existed before it (a
backfill, a fix of bad values) is a finding unless the plan says so::

    [[data_changes]]
    step = "up/005_backfill_status.sql"     # the step file, up/ or down/
    table = "public.orders"                  # as named before the migration
    ops = ["UPDATE"]                         # optional: INSERT, UPDATE, DELETE, TRUNCATE

A declared change is expected: the gate applies it to its picture of what the
database must hold, so the comparisons stay exact for every other row, and the
rows it changed must read as the step left them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PlanError

__all__ = ["DataChange", "parse_data_changes"]

OPS = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE"})
_KEYS = frozenset({"step", "table", "ops"})


@dataclass(frozen=True)
class DataChange:
    step: str  # "up/005_backfill.sql"
    table: str  # "public.orders"
    ops: frozenset[str] = OPS

    def covers(self, *, step: str, table: str, op: str) -> bool:
        return step == self.step and table == self.table and op in self.ops


def parse_data_changes(
    raw: object, *, toml_path: Path, steps: set[str], qualify: Callable[..., str]
) -> tuple[DataChange, ...]:
    """``qualify`` turns a table name as written into ``schema.table``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise PlanError(f"{toml_path}: [[data_changes]] is a list of tables: step, table, ops")
    out = []
    for i, entry in enumerate(raw):
        where = f"{toml_path}: [[data_changes]] #{i + 1}"
        unknown = set(entry) - _KEYS
        if unknown:
            raise PlanError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"the known ones are {', '.join(sorted(_KEYS))}"
            )
        step = entry.get("step")
        if step not in steps:
            raise PlanError(
                f"{where}: step = {step!r} is not a step of this plan; name its file as "
                f'"up/NNN_name.sql" or "down/NNN_name.sql"'
            )
        table = entry.get("table")
        if not isinstance(table, str) or not table:
            raise PlanError(f'{where}: needs table = "schema.table", as named before the migration')
        ops = entry.get("ops", sorted(OPS))
        if not isinstance(ops, list) or not ops or not set(ops) <= OPS:
            raise PlanError(f"{where}: ops must be a list of {', '.join(sorted(OPS))}")
        out.append(DataChange(str(step), str(qualify(table, where=where)), frozenset(ops)))
    return tuple(out)
