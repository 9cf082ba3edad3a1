"""A step's statements sent to the server in one round trip, each still answered alone.

A step holds its locks from its first statement to its commit. Sent one at a
time, every statement costs a round trip to the runner, and the runner shares
its process with the traffic's clients: on a busy machine the server spends
most of a step idle in transaction, waiting for the runner's next statement,
with the application queued behind locks nobody is using. That is the harness
slowing the step, not the plan; one message of statements (the simple query
protocol, as ``psql -c`` sends one) takes the runner out of the lock's time.

The server still answers each statement with its own result, so a failure is
named by its statement: the results before it succeeded, the next one failed,
and the server ran none after it (the transaction is aborted).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from harness.connections import Conn, script_error, send_script
from harness.plan.sqltext import Statement

__all__ = ["ScriptFailed", "run_script"]


class ScriptFailed(Exception):
    """The server refused ``statement`` with ``error``; it ran none after it."""

    def __init__(self, statement: Statement, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.statement = statement
        self.error = error


def run_script(conn: Conn, statements: Sequence[Statement]) -> None:
    """Run ``statements`` in the connection's open transaction, in one round trip.

    Raises :class:`ScriptFailed` naming the statement the server refused, or the
    connection's own error when it was lost (no statement to blame).
    """
    if not statements:
        return
    results = send_script(conn, "\n".join(s.terminated for s in statements))
    failed = script_error(conn, results)
    if failed is not None:
        index, error = failed
        if index >= len(statements):
            raise error
        raise ScriptFailed(statements[index], error)
