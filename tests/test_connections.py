"""The connection rules every module shares, checked without a server."""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cluster.processes import free_port
from harness.connections import (
    Lsn,
    connect,
    connect_kwargs,
    connect_timeout,
    describe,
    standby_refusal,
)
from harness.errors import ConnectionFailed, InfrastructureError
from harness.routing import ErrorKind, ReadToken, classify
from harness.testing.fix_cluster import in_ci

SECRET = "s3cr3t-Pa55"


@settings(max_examples=200, deadline=None, derandomize=in_ci())
@given(st.floats(min_value=0, max_value=3600, allow_nan=False))
def test_connect_timeout_is_whole_seconds_never_below_two_never_zero(seconds: float) -> None:
    value = connect_timeout(seconds)
    assert isinstance(value, int)
    assert value >= max(2, seconds)
    assert value - max(2.0, seconds) < 1 or value == 2


def test_connections_prepare_nothing_unless_asked() -> None:
    assert connect_kwargs(timeout=2.5) == {"connect_timeout": 3, "prepare_threshold": None}
    named = connect_kwargs(timeout=0, application_name="app_reader", prepare_threshold=5)
    assert named == {"connect_timeout": 2, "prepare_threshold": 5, "application_name": "app_reader"}


def test_a_refused_connection_names_the_server_the_reason_and_the_fix() -> None:
    port = free_port()
    dsn = f"postgresql://app:{SECRET}@127.0.0.1:{port}/shop"
    with pytest.raises(ConnectionFailed) as info:
        connect(dsn, timeout=2, fix="start the server")
    exc = info.value
    message = str(exc)
    assert message.startswith(f"cannot connect to postgresql://app:***@127.0.0.1:{port}/shop: ")
    assert message.endswith("; start the server")
    assert "connection refused" in exc.reason.lower()
    assert "\n" not in exc.reason
    assert exc.reason in message
    assert describe(exc) == exc.reason
    assert SECRET not in message + repr(exc)
    assert exc.__cause__ is None
    assert exc.__suppress_context__
    # still what a probe that waits for a server to come up catches
    assert isinstance(exc, psycopg.OperationalError)
    assert isinstance(exc, InfrastructureError)
    assert exc.exit_code == 2
    assert classify(exc) is ErrorKind.SERVER_REFUSED


def test_describe_keeps_one_line_and_no_password() -> None:
    exc = psycopg.OperationalError(f"failed for postgresql://u:{SECRET}@h/db\nHINT: retry")
    assert describe(exc) == "failed for postgresql://u:***@h/db HINT: retry"
    assert describe(RuntimeError()) == "RuntimeError"


def test_the_standby_refusal_says_what_was_checked_and_the_fix() -> None:
    message = standby_refusal("the writer at postgresql://h/db", fix="point DATABASE_URL at it")
    assert message == (
        "the writer at postgresql://h/db is a read-only standby (pg_is_in_recovery() is true) "
        "and cannot take writes; point DATABASE_URL at it"
    )


@settings(max_examples=200, deadline=None, derandomize=in_ci())
@given(st.lists(st.none() | st.integers(min_value=0, max_value=2**64 - 1), max_size=8))
def test_a_read_token_keeps_the_newest_position_and_remembers_an_unknown_one(
    writes: list[int | None],
) -> None:
    token = ReadToken()
    for lsn in writes:
        token.wrote(None if lsn is None else Lsn(lsn))
    known = [lsn for lsn in writes if lsn is not None]
    assert token.lsn == (max(known) if known else None)
    assert token.position_unknown == (None in writes)
    assert token.writer_only == ("position_unknown" if None in writes else None)
