"""Views left under a moved table's old name: do they show old sessions that table, exactly?

A plan that moves a table often leaves a view of the same name where the table was,
so that sessions still resolving the old name (a ``search_path`` set before the
move, a pooler's server connection an hour old) keep reading and writing it. For
them the view is the table. But a view is a query, and a query can leave out rows
(a ``WHERE``), show one column under another's name (a select list out of order),
or cast a value. No step fails and no check of the tables sees it: the tables are
intact; what old sessions read, and write through the view, is not.

For each name that was a table before the migration and is a view after it, this
compares:

* its columns with the table's before the migration: names, types and order, which
  ``SELECT *`` and a positional ``INSERT … VALUES`` rely on (columns added at the
  end are allowed, as a table may gain them);
* its rows with the table's where the plan moved it, on the columns both have by
  name: row count and checksum, and on a difference, which columns differ. Where
  the view's columns are the table's, in order, the table's checksum is the one its
  fingerprint just took; a difference is confirmed with both read in one snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from harness.catalog import Fingerprint, Relation
from harness.catalog.checksum import DataChecksum, table_checksum
from harness.connections import Conn
from harness.invariants.result import Check
from harness.invariants.structure import moved_name
from harness.plan import Layout

__all__ = ["check_compatibility_views"]

NAME = "compatibility_views.faithful"


def _table_behind(layout: Layout, after: Fingerprint, view: Relation) -> Relation | None:
    """The table the view stands in for: where the plan moved it, else the only table
    of that name (a table the layout does not list may still have moved)."""
    listed = after.tables.get(moved_name(layout, view.qualified))
    if listed is not None:
        return listed
    same_name = [t for t in after.tables.values() if t.name == view.name]
    return same_name[0] if len(same_name) == 1 else None


def _column_findings(was: Relation, view: Relation) -> list[str]:
    before = {c.name: c.type for c in was.columns}
    shown = {c.name: c.type for c in view.columns}
    out = []
    missing = [name for name in before if name not in shown]
    if missing:
        out.append(
            f"`{view.qualified}` leaves out column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} of the table it stands for: old sessions that read or "
            "write them fail"
        )
    for name, kind in before.items():
        if name in shown and shown[name] != kind:
            out.append(
                f"`{view.qualified}`: column {name} is {shown[name]} through the view, "
                f"{kind} in the table it stands for"
            )
    order = [c.name for c in view.columns][: len(before)]
    if not missing and order != list(before):
        out.append(
            f"`{view.qualified}` shows the table's columns in another order ({', '.join(order)}; "
            f"the table: {', '.join(before)}): an insert that names no columns writes into "
            "the wrong ones"
        )
    return out


@contextmanager
def _one_snapshot(conn: Conn) -> Iterator[None]:
    """Reads of the view and of its table that see the same rows."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _sums(conn: Conn, view: Relation, table: Relation, columns: list[str]) -> tuple[
    DataChecksum, DataChecksum
]:  # fmt: skip
    """Both checksums on ``columns``; call inside :func:`_one_snapshot`."""
    shown = table_checksum(conn, schema=view.schema, table=view.name, only=columns)
    held = table_checksum(conn, schema=table.schema, table=table.name, only=columns)
    return shown, held


def _row_findings(conn: Conn, view: Relation, table: Relation) -> list[str]:
    types = {c.name: c.type for c in table.columns}
    # Compared where view and table agree on the name and the type (a type that
    # differs is a column finding already, and hashes differently anyway).
    columns = [c.name for c in view.columns if types.get(c.name) == c.type]
    if not columns:
        return []
    if columns == [c.name for c in table.columns] and table.checksum is not None:
        shown = table_checksum(conn, schema=view.schema, table=view.name, only=columns)
        if (shown.rows, shown.digest) == (table.rows, table.checksum):
            return []
    with _one_snapshot(conn):
        shown, held = _sums(conn, view, table, columns)
    if shown.rows != held.rows:
        return [
            f"`{view.qualified}` shows {shown.rows:,} row{'' if shown.rows == 1 else 's'} "
            f"where `{table.qualified}`, the table "
            f"it stands for, holds {held.rows:,}: old sessions see another table"
        ]
    if shown.digest == held.digest:
        return []
    differ = []
    with _one_snapshot(conn):
        for name in columns:
            shown_one, held_one = _sums(conn, view, table, [name])
            if shown_one.digest != held_one.digest:
                differ.append(name)
    what = (
        f"column{'s' if len(differ) > 1 else ''} {', '.join(differ)} hold"
        f"{'' if len(differ) > 1 else 's'} other values than the table's of that name"
        if differ
        else "each column holds the table's values, but not in the same rows"
    )
    return [
        f"`{view.qualified}`: {what} (`{table.qualified}`, the table it stands for): "
        "old sessions read, and write through the view, other data than the table's"
    ]


def check_compatibility_views(
    layout: Layout, before: Fingerprint, after: Fingerprint, conn: Conn
) -> Check:
    """Each view under a table's old name against that table; ``conn`` is the database
    ``after`` was read from, unchanged since."""
    offenders: list[str] = []
    views = []
    for qualified, was in sorted(before.tables.items()):
        view = after.views.get(qualified)
        if view is None or view.kind != "v":
            continue
        views.append(qualified)
        offenders += _column_findings(was, view)
        table = _table_behind(layout, after, view)
        if table is not None:  # a table gone or renamed is tables.intact's finding
            offenders += _row_findings(conn, view, table)
    shown = ", ".join(f"`{v}`" for v in views[:3]) + (" …" if len(views) > 3 else "")
    return Check.of(
        NAME,
        offenders=offenders,
        ok=(
            f"{len(views)} view{'s' if len(views) != 1 else ''} left under moved tables' old "
            f"names ({shown}) show old sessions their tables' columns and rows, exactly"
            if views
            else "no table was left a view under its old name"
        ),
        failed="a view old sessions read instead of a moved table does not show that table",
    )
