"""A step that ends the database's other sessions: the gate's verdict when its own are among them.

A plan may end every other session of the database (``pg_terminate_backend`` over
``pg_stat_activity``), to make old connections come back with a new
``search_path``. In production that ends the application's open connections and
aborts their transactions: no zero-downtime cutover does it. It also ends the
sessions the gate keeps open across the steps (the change ledger's, whose
temporary slot goes with it, and the old sessions'), so the gate cannot go on:
it says so as the step's finding, instead of failing as if the harness had broken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from harness.connections import describe
from harness.invariants import Check

__all__ = ["SessionsEnded", "ended_check", "sessions_ended_after"]


class SessionsEnded(Exception):
    """Raised after ``step`` when one of the gate's own sessions was ended by the server."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@contextmanager
def sessions_ended_after(step: str) -> Iterator[None]:
    """Around the gate's work after ``step``: the server ending one of its sessions
    (57P01, an administrator's command) becomes :class:`SessionsEnded`."""
    try:
        yield
    except psycopg.errors.AdminShutdown as exc:
        raise SessionsEnded(step, describe(exc)) from exc


def ended_check(exc: SessionsEnded) -> Check:
    """The step's finding: ``migrate.steps`` or ``rollback.steps`` by its direction."""
    name = "rollback.steps" if exc.step.startswith("down/") else "migrate.steps"
    return Check(
        name,
        "fail",
        "a step ends the database's other sessions",
        (
            f"{exc.step}: it ended other sessions of the database, the gate's own among them "
            f"({exc.reason}); in production it ends the application's open connections and "
            "aborts their transactions, which a zero-downtime cutover does not. The gate cannot "
            "go on without its sessions: the checks after this step did not run",
        ),
    )
