"""The ledger: which steps of which plan a database has applied, with their checksums.

It lives in its own schema, ``pgcutover``, which fingerprints leave out: the
ledger is the harness's bookkeeping, not part of what a plan changes. A row is
written in the same transaction as its step, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

__all__ = ["LEDGER_SCHEMA", "AppliedStep", "ensure_ledger", "read_ledger"]

LEDGER_SCHEMA = "pgcutover"

_CREATE = """
CREATE SCHEMA IF NOT EXISTS pgcutover;
CREATE TABLE IF NOT EXISTS pgcutover.ledger (
    plan        text        NOT NULL,
    step        integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL,
    applied_by  text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (plan, step)
)
"""


@dataclass(frozen=True)
class AppliedStep:
    step: int
    name: str
    checksum: str
    applied_at: datetime


def ensure_ledger(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    exists = conn.execute("SELECT to_regclass('pgcutover.ledger') IS NOT NULL").fetchone()
    if exists and exists[0]:
        return
    with conn.transaction():
        conn.execute(_CREATE)


def read_ledger(conn: psycopg.Connection[tuple[object, ...]], plan: str) -> list[AppliedStep]:
    exists = conn.execute("SELECT to_regclass('pgcutover.ledger') IS NOT NULL").fetchone()
    if not (exists and exists[0]):
        return []
    with conn.cursor(row_factory=class_row(AppliedStep)) as cur:
        return cur.execute(
            "SELECT step, name, checksum, applied_at FROM pgcutover.ledger"
            " WHERE plan = %s ORDER BY step",
            (plan,),
        ).fetchall()


def record(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    plan: str,
    step: int,
    name: str,
    checksum: str,
    duration_ms: int,
) -> None:
    conn.execute(
        "INSERT INTO pgcutover.ledger (plan, step, name, checksum, duration_ms)"
        " VALUES (%s, %s, %s, %s, %s)",
        (plan, step, name, checksum, duration_ms),
    )


def forget(conn: psycopg.Connection[tuple[object, ...]], *, plan: str, step: int) -> None:
    conn.execute("DELETE FROM pgcutover.ledger WHERE plan = %s AND step = %s", (plan, step))
