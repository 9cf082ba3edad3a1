"""What the local provider builds, checked without starting anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cluster.base import Endpoints
from harness.cluster.binaries import find_binaries, find_pgbouncer
from harness.cluster.pgbouncer import READER, WRITER, PoolSettings, render_ini
from harness.dsn import redact, with_database
from harness.errors import UsageError


def _ini(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith(";")}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (WRITER, {"pool_mode": "transaction", "max_client_conn": "100", "default_pool_size": "25",
                  "reserve_pool_size": "5", "reserve_pool_timeout": "5",
                  "server_lifetime": "3600", "server_idle_timeout": "600"}),
        (READER, {"pool_mode": "session", "max_client_conn": "200", "default_pool_size": "50",
                  "reserve_pool_size": "10", "server_lifetime": "7200",
                  "server_idle_timeout": "900"}),
    ],
)  # fmt: skip
def test_pgbouncer_ini_has_the_plans_numbers(
    settings: PoolSettings, expected: dict[str, str], tmp_path: Path
) -> None:
    text = render_ini(
        settings,
        listen_port=6432,
        server_port=5432,
        dbname="app",
        auth_file=str(tmp_path / "users.txt"),
        files_in=str(tmp_path),
    )
    ini = _ini(text)
    assert {k: ini[k] for k in expected} == expected
    role = "writer" if settings is WRITER else "reader"
    assert ini[role] == "host=127.0.0.1 port=5432 dbname=app"
    assert ini["*"] == "host=127.0.0.1 port=5432"
    assert ini["logfile"].startswith(str(tmp_path))


def test_endpoints_for_another_database_keep_servers() -> None:
    eps = Endpoints(
        primary="postgresql://postgres@127.0.0.1:1/app",
        replica="postgresql://postgres@127.0.0.1:2/app",
        writer="postgresql://postgres@127.0.0.1:3/app?application_name=x",
        reader="host=127.0.0.1 port=4 dbname=app user=postgres",
    )
    other = eps.for_database("scenario_1")
    assert other.primary == "postgresql://postgres@127.0.0.1:1/scenario_1"
    assert other.writer == "postgresql://postgres@127.0.0.1:3/scenario_1?application_name=x"
    assert "dbname=scenario_1" in other.reader
    assert "port=4" in other.reader
    assert eps.as_env()["DATABASE_READONLY_URL"] == eps.reader


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("postgresql://app:s3cret@db:5432/x", "s3cret"),
        ("could not connect to postgres://u:p%40ss@h/x: refused", "p%40ss"),
        ("host=h password=hunter2 dbname=x", "hunter2"),
        ("host=h password='with space' dbname=x", "with space"),
    ],
)
def test_redact_hides_passwords(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert "***" in redact(text)


def test_redact_leaves_passwordless_text_alone() -> None:
    text = "postgresql://postgres@127.0.0.1:5432/app"
    assert redact(text) == text
    assert with_database(text, "other") == "postgresql://postgres@127.0.0.1:5432/other"


def test_unusable_pg_bin_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "initdb").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "initdb", 0o755)
    with pytest.raises(UsageError, match=r"lacks pg_ctl, postgres, pg_basebackup") as err:
        find_binaries(tmp_path)
    assert "pg_config --bindir" in str(err.value)


def test_pgbouncer_override_must_be_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCUTOVER_PGBOUNCER", str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="is not an executable file"):
        find_pgbouncer()
