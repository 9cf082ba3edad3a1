"""The router's configuration choices, checked without a server."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cluster.pgbouncer import READER, WRITER
from harness.cluster.processes import free_port
from harness.errors import UsageError
from harness.legacy.application import RETAILER_READER_POOL, RETAILER_WRITER_POOL
from harness.routing import (
    READER_POOL,
    WRITER_POOL,
    Database,
    ErrorKind,
    Lsn,
    ReplicaPolicy,
    WriterUnavailable,
    classify,
    urls_from_env,
)
from harness.testing.fix_cluster import in_ci

SECRET = "s3cr3t-Pa55"


def test_pools_take_the_plans_dbconfig_sizes_and_databasepool_timeouts() -> None:
    assert (WRITER_POOL.min_size, WRITER_POOL.max_size) == (2, 10)
    assert (READER_POOL.min_size, READER_POOL.max_size) == (5, 20)
    assert (WRITER_POOL.max_idle, READER_POOL.max_idle) == (30.0, 60.0)
    for pool in (WRITER_POOL, READER_POOL):
        assert pool.timeout == 2.0
        assert pool.connect_timeout == 2.0
    assert WRITER_POOL.application_name != READER_POOL.application_name


def test_the_retailer_names_its_pools_and_keeps_the_librarys_sizes() -> None:
    assert RETAILER_WRITER_POOL.application_name == "kct_nextjs_writer"
    assert RETAILER_READER_POOL.application_name == "kct_nextjs_reader"
    assert replace(RETAILER_WRITER_POOL, application_name="x") == replace(
        WRITER_POOL, application_name="x"
    )
    assert replace(RETAILER_READER_POOL, application_name="x") == replace(
        READER_POOL, application_name="x"
    )


def test_pool_sizes_leave_room_for_several_processes_behind_pgbouncer() -> None:
    # the reason for the choice: ten writers fit under PgBouncer's client limit, and
    # three readers under the replica's server connections (session pooling).
    assert 10 * WRITER_POOL.max_size <= WRITER.max_client_conn
    assert 3 * READER_POOL.max_size <= READER.default_pool_size + READER.reserve_pool_size
    assert WRITER.max_client_conn <= 20 * 5  # DatabasePool's 20: five processes fill it


def test_urls_from_env_falls_back_to_the_writer() -> None:
    assert urls_from_env({"DATABASE_URL": "postgresql://w/db"}) == ("postgresql://w/db", None)
    assert urls_from_env({"DATABASE_URL": "postgresql://w/db", "DATABASE_READONLY_URL": " "}) == (
        "postgresql://w/db",
        None,
    )
    both = {"DATABASE_URL": "postgresql://w/db", "DATABASE_READONLY_URL": "postgresql://r/db"}
    assert urls_from_env(both) == ("postgresql://w/db", "postgresql://r/db")


def test_missing_database_url_says_what_to_set() -> None:
    with pytest.raises(UsageError, match="DATABASE_URL is not set"):
        urls_from_env({"DATABASE_READONLY_URL": "postgresql://r/db"})
    with pytest.raises(UsageError, match="DATABASE_URL is not set"):
        Database.from_env({})


@pytest.mark.parametrize(
    "kwargs",
    [{"max_lag_bytes": -1}, {"check_interval": -0.1}, {"probe_timeout": 0},
     {"retry_min": 2.0, "retry_max": 1.0}],
)  # fmt: skip
def test_replica_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match="replica"):
        ReplicaPolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, derandomize=in_ci())
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_prints_and_parses_like_postgresql(value: int) -> None:
    lsn = Lsn(value)
    text = str(lsn)
    assert text == f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
    assert Lsn.parse(text) == value


def test_lsn_orders_by_position_not_by_text() -> None:
    assert Lsn.parse("0/A0000000") > Lsn.parse("0/9FFFFFFF")
    assert Lsn.parse("1/0") > Lsn.parse("0/FFFFFFFF")
    with pytest.raises(ValueError, match="not a WAL position"):
        Lsn.parse("16B374D848")


def test_unreachable_writer_is_a_clear_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://kct_app:{SECRET}@127.0.0.1:{free_port()}/kct_production"
    with pytest.raises(WriterUnavailable) as info:
        Database(url)
    message = str(info.value)
    assert message.startswith("cannot connect to the writer at postgresql://kct_app:***@127.0.0.1:")
    assert "check DATABASE_URL" in message
    assert SECRET not in message
    assert SECRET not in repr(info.value)
    assert SECRET not in caplog.text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert classify(info.value) is ErrorKind.SERVER_REFUSED
    assert info.value.exit_code == 2
