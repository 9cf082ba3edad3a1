"""Which PostgreSQL and PgBouncer a gate runs, and the input refused before any server starts."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cluster.docker_image import image_for
from harness.cluster.pooling import WRITER, Poolers, render_ini
from harness.cluster.versions import (
    PG_VERSIONS,
    RELEASES,
    check_pgbouncer_settings,
    choose,
    choose_for,
    parse_version,
    release_for,
)
from harness.errors import PlanError, UsageError
from harness.invariants.prepared import positional
from harness.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent


def _plan(tmp_path: Path, section: str) -> Path:
    directory = tmp_path / "plan"
    for folder in ("up", "down"):
        (directory / folder).mkdir(parents=True)
        (directory / folder / "001_s.sql").write_text("SELECT 1;\n")
    (directory / "plan.toml").write_text('name = "p"\n' + textwrap.dedent(section))
    return directory


def test_each_major_has_its_debian_release_or_is_refused_naming_the_buildable_ones() -> None:
    assert PG_VERSIONS == (15, 16, 17)
    assert (release_for(15).suite, release_for(15).pgbouncer) == ("bookworm", (1, 18))
    assert (release_for(17).suite, release_for(17).pgbouncer) == ("trixie", (1, 24))
    for major in (16, 14):
        with pytest.raises(UsageError, match=rf"PostgreSQL {major} has no image here") as exc:
            release_for(major)
        assert "15 (bookworm), 17 (trixie)" in str(exc.value)
        assert "--image" in str(exc.value)


def test_the_image_of_each_major_is_tagged_with_the_major_and_the_dockerfile() -> None:
    assert image_for(17).split(":")[1].split("-")[1] == image_for(15).split(":")[1].split("-")[1]
    assert image_for(17).startswith("pgcutover/postgres:17-")


def test_a_setting_the_chosen_pgbouncer_does_not_know_is_refused_naming_both_versions() -> None:
    with pytest.raises(
        UsageError, match=r"PgBouncer 1\.18 does not know .* came in PgBouncer 1\.21"
    ):
        check_pgbouncer_settings({"max_prepared_statements"}, version=(1, 18), where="w")
    check_pgbouncer_settings({"max_prepared_statements"}, version=(1, 24), where="w")
    check_pgbouncer_settings({"max_prepared_statements"}, version=None, where="w")
    keys = {"max_prepared_statements"}
    with pytest.raises(UsageError, match=r"--pgbouncer 1\.24 with any --pg-version"):
        choose(provider="docker", pg_version=15, image=None, pg_bin=None, pgbouncer_keys=keys,
               where="w")  # fmt: skip
    chosen = choose(
        provider="docker", pg_version=17, image=None, pg_bin=None, pgbouncer_keys=keys, where="w"
    )
    assert chosen == image_for(17)
    # An image of one's own: its PgBouncer is not known here, and nothing is refused.
    given = choose(
        provider="docker", pg_version=15, image="mine:1", pg_bin=None, pgbouncer_keys=keys, where=""
    )
    assert given == "mine:1"


def test_the_plans_cluster_version_and_the_option_choose_the_image(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path, "[cluster]\npg_version = 17\n"))
    assert plan.pg_version == 17
    args = argparse.Namespace(provider="docker", pg_version=None, image=None, pg_bin=None)
    assert choose_for(args, plan) == image_for(17)
    args.pg_version = 15
    assert choose_for(args, plan) == image_for(15)
    args.pg_version = 16
    with pytest.raises(UsageError, match="PostgreSQL 16 has no image"):
        choose_for(args, plan)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[cluster]\npg_version = '17'\n", "pg_version is a PostgreSQL major"),
        ("[cluster]\nversion = 17\n", "has pg_version and pgbouncer only"),
        ("[pgbouncer.writer]\nmax_prepared_statements = -1\n", "at least 0"),
        ("[workload]\nprepare_threshold = true\n", "prepare_threshold must be a whole number"),
    ],
)
def test_malformed_version_and_prepare_settings_are_refused(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(_plan(tmp_path, section))


def test_max_prepared_statements_is_written_only_when_given(tmp_path: Path) -> None:
    assert "max_prepared_statements" not in render_ini(
        WRITER, listen_port=1, server_port=2, dbname="d", auth_file="a"
    )
    plan = load_plan(_plan(tmp_path, "[pgbouncer.writer]\nmax_prepared_statements = 50\n"))
    poolers = plan.pgbouncer
    assert isinstance(poolers, Poolers)
    ini = render_ini(poolers.writer, listen_port=1, server_port=2, dbname="d", auth_file="a")
    assert "\nmax_prepared_statements = 50\n" in ini
    assert poolers.writer.pgbouncer_keys == {"max_prepared_statements"}
    assert poolers.reader.pgbouncer_keys == set()


def test_placeholders_become_positional_parameters_one_per_name() -> None:
    assert positional("SELECT %(a)s, %(b)s, %(a)s WHERE x LIKE 'p%%'") == (
        "SELECT $1, $2, $1 WHERE x LIKE 'p%'",
        2,
    )
    assert positional("SELECT 1") == ("SELECT 1", 0)


def test_versions_read_from_banners() -> None:
    assert parse_version("PgBouncer 1.24.1") == (1, 24, 1)
    assert parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == (15, 18)
    assert parse_version("none") is None
    assert RELEASES[17].pgbouncer is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--provider", "docker", "--pg-version", "16"], "PostgreSQL 16 has no image here"),
        (["--pg-version", "17"], "PostgreSQL 17 was asked for, and the local provider"),
    ],
)
def test_the_gate_refuses_a_version_it_cannot_run_before_any_server_starts(
    options: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(ROOT / "plans" / "kct"),
         *options],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "starting" not in done.stderr
