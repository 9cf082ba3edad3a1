"""Passwords never leave the process: not in output (any character), not on a command line."""

from __future__ import annotations

import os
from urllib.parse import quote

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.dsn import child_env, redact
from harness.runner.locks import backoff, parse_duration, step_application_name
from harness.testing.fix_cluster import in_ci

PROPERTY = settings(max_examples=300, deadline=None, derandomize=in_ci(), database=None)
# A password long enough that finding it again in unrelated text is no accident.
passwords = st.text(min_size=6, max_size=30).filter(lambda p: "\x00" not in p)


@PROPERTY
@given(password=passwords.filter(lambda p: p.strip() == p and not any(c.isspace() for c in p)))
@example(password="pa@ss@word")
@example(password="a/b?c:d@e#f")
def test_a_raw_password_in_a_url_is_hidden_whatever_its_characters(password: str) -> None:
    text = f"cannot connect to postgresql://app:{password}@db.example:5432/shop: refused"
    assume(password not in "cannot connect to postgresql://app:***@db.example:5432/shop: refused")
    shown = redact(text)
    assert password not in shown
    assert "postgresql://app:***@db.example:5432/shop: refused" in shown


@PROPERTY
@given(password=passwords)
def test_a_percent_encoded_password_in_a_url_is_hidden(password: str) -> None:
    encoded = quote(password, safe="")
    assume(encoded not in "postgres://app:***@h/x and more")
    shown = redact(f"postgres://app:{encoded}@h/x and more")
    assert encoded not in shown
    assert shown == "postgres://app:***@h/x and more"


@PROPERTY
@given(password=passwords)
@example(password="it's a 'quoted' secret")
@example(password="back\\slash and space")
def test_a_password_in_key_value_form_is_hidden(password: str) -> None:
    dsn = make_conninfo("", host="h", port=5432, dbname="x", user="app", password=password)
    assume(password not in f"error for {make_conninfo(dsn, password='')}; retrying")
    shown = redact(f"error for {dsn}; retrying")
    assert "password=***" in shown
    assert password not in shown.replace("password=***", "")


@PROPERTY
@given(password=passwords)
def test_child_programs_get_the_password_in_their_environment_only(password: str) -> None:
    for dsn in (
        f"postgresql://app:{quote(password, safe='')}@h:5432/x",
        make_conninfo("", host="h", port=5432, dbname="x", user="app", password=password),
    ):
        conninfo, env = child_env(dsn)
        assert "password" not in conninfo_to_dict(conninfo)
        assert password not in conninfo
        assert env["PGPASSWORD"] == password
        assert conninfo_to_dict(conninfo)["user"] == "app"


def test_without_a_password_the_environment_is_left_as_it_is() -> None:
    conninfo, env = child_env("postgresql://app@h/x")
    assert conninfo_to_dict(conninfo) == {"host": "h", "user": "app", "dbname": "x"}
    assert env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")


def test_lock_attempt_names_and_backoff() -> None:
    assert parse_duration("200ms") == 0.2
    assert parse_duration("2s") == 2.0
    assert parse_duration("1.5min") == 90.0
    name = step_application_name(plan="p" * 80, label="up/001_x.sql")
    assert len(name.encode()) <= 63
    assert name.startswith("pgcutover ppp")
    delays = [backoff(n, jitter=lambda: 1.0) for n in range(8)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert all(backoff(n, jitter=lambda: 0.0) == d / 2 for n, d in enumerate(delays))
