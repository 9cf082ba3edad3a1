"""The error taxonomy: every disguise of "no connection for you" gets the same name everywhere."""

from __future__ import annotations

import json

import psycopg
import psycopg_pool
import pytest
import sqlalchemy.exc

from harness.errors import HarnessError, InfrastructureError
from harness.routing import (
    ErrorKind,
    PoolExhausted,
    ReplicaUnavailable,
    WriterUnavailable,
    classify,
)

# Messages exactly as psycopg 3.3 / libpq 15 / PgBouncer 1.18 word them.
REFUSED_AT_CONNECT = (
    'connection failed: connection to server at "127.0.0.1", port 5999 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
)
MAX_CLIENT_CONN = (
    'connection failed: connection to server at "127.0.0.1", port 6432 failed: '
    "FATAL:  no more connections allowed (max_client_conn)"
)
TOO_MANY_CLIENTS = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    "FATAL:  sorry, too many clients already"
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec"), "pool_timeout"),
        (psycopg_pool.TooManyRequests("the pool 'x' has already 5 requests waiting"),
         "pool_timeout"),
        (sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 0 reached"),
         "pool_timeout"),
        (psycopg.errors.TooManyConnections("too many connections for role \"app\""),
         "server_refused"),
        (psycopg.OperationalError(TOO_MANY_CLIENTS), "server_refused"),
        (psycopg.OperationalError(REFUSED_AT_CONNECT), "server_refused"),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
         "server_refused"),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), "server_refused"),
        (psycopg.OperationalError(MAX_CLIENT_CONN), "pooler_refused"),
        (psycopg.errors.ProtocolViolation("query_wait_timeout"), "pooler_refused"),
        (psycopg.errors.ProtocolViolation(
            "server login has been failing, try again later (server_login_retry)"),
         "pooler_refused"),
        (psycopg.errors.SerializationFailure(
            "canceling statement due to conflict with recovery"), "replica_unavailable"),
        (psycopg.errors.SerializationFailure(
            "could not serialize access due to concurrent update"), "query_error"),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
         "query_error"),
        (psycopg.errors.UndefinedTable('relation "products" does not exist'), "query_error"),
        (ValueError("not a database error at all"), "query_error"),
    ],
)  # fmt: skip
def test_classify_names_each_disguise(exc: BaseException, kind: str) -> None:
    assert classify(exc) == ErrorKind(kind)
    assert classify(exc) == kind  # a str enum: metrics and JSON use the value itself


def test_classify_looks_through_sqlalchemy_and_causes() -> None:
    wrapped = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, psycopg.OperationalError(MAX_CLIENT_CONN)
    )
    assert classify(wrapped) is ErrorKind.POOLER_REFUSED
    cause = psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec")
    outer = RuntimeError("request failed")
    outer.__cause__ = cause
    assert classify(outer) is ErrorKind.POOL_TIMEOUT


def test_error_kinds_are_the_five_agreed_names() -> None:
    assert sorted(k.value for k in ErrorKind) == [
        "pool_timeout", "pooler_refused", "query_error", "replica_unavailable", "server_refused",
    ]  # fmt: skip
    assert json.dumps({ErrorKind.POOL_TIMEOUT: 1}) == '{"pool_timeout": 1}'


def test_pool_exhausted_carries_stats_and_still_is_a_pool_timeout() -> None:
    stats = {"pool_min": 2, "pool_max": 10, "pool_size": 10, "pool_available": 0,
             "requests_waiting": 3}  # fmt: skip
    exc = PoolExhausted(role="writer", timeout=2.0, stats=stats)
    assert str(exc).startswith("couldn't get a writer connection after 2.00 sec: ")
    assert "10 of 10 connections in use, 3 requests waiting" in str(exc)
    assert exc.stats == stats
    assert exc.stats is not stats
    assert isinstance(exc, psycopg_pool.PoolTimeout)
    assert isinstance(exc, psycopg.OperationalError)
    assert isinstance(exc, HarnessError)
    assert exc.exit_code == 2
    assert classify(exc) is ErrorKind.POOL_TIMEOUT
    assert type(exc).__module__ == "harness.routing"


def test_router_errors_know_their_kind() -> None:
    gone = ReplicaUnavailable("read on the replica failed")
    assert isinstance(gone, psycopg.OperationalError)
    assert classify(gone) is ErrorKind.REPLICA_UNAVAILABLE
    writer = WriterUnavailable("cannot connect to the writer")
    assert isinstance(writer, InfrastructureError)
    assert writer.exit_code == 2
    assert classify(writer) is ErrorKind.SERVER_REFUSED
