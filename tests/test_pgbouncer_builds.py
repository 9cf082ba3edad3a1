"""``--pgbouncer``: the PgBouncer an image carries, or this machine's, refused before any server."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import build_parser, docker_options
from harness.cluster import binaries, pgbouncer_builds
from harness.cluster.docker_image import image_for
from harness.cluster.pgbouncer_builds import (
    choose_images,
    choose_pgbouncer,
    pgbouncer_option,
    release_with_pgbouncer,
)
from harness.cluster.versions import choose
from harness.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
PREPARED = {"max_prepared_statements"}


@pytest.fixture
def local_pgbouncer(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's PgBouncer is 1.18.0, wherever the test runs."""
    monkeypatch.setattr(pgbouncer_builds, "local_pgbouncer_version", lambda: (1, 18, 0))
    monkeypatch.setattr(binaries, "find_pgbouncer", lambda: "/opt/pgbouncer/bin/pgbouncer")


def test_the_option_is_a_release_line() -> None:
    assert pgbouncer_option("1.24") == (1, 24)
    assert pgbouncer_option(" 1.18 ") == (1, 18)
    for bad in ("1", "1.24.1", "latest", "1.x"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"give MAJOR\.MINOR, such as 1\.24"):
            pgbouncer_option(bad)


def test_the_docker_provider_runs_the_pgbouncer_of_the_image_that_carries_it() -> None:
    assert release_with_pgbouncer((1, 24)).suite == "trixie"
    assert choose_pgbouncer(provider="docker", pgbouncer=(1, 24)) == image_for(17)
    assert choose_pgbouncer(provider="docker", pgbouncer=(1, 18)) == image_for(15)
    assert choose_pgbouncer(provider="docker", pgbouncer=None) is None
    with pytest.raises(UsageError, match=r"PgBouncer 1\.21 is in no image here") as exc:
        choose_pgbouncer(provider="docker", pgbouncer=(1, 21))
    assert "1.18 (bookworm, with PostgreSQL 15), 1.24 (trixie, with PostgreSQL 17)" in str(
        exc.value
    )
    assert "--provider local" in str(exc.value)


@pytest.mark.usefixtures("local_pgbouncer")
def test_the_local_provider_runs_only_its_own_pgbouncer_and_says_which_it_has() -> None:
    assert choose_pgbouncer(provider="local", pgbouncer=(1, 18)) is None
    with pytest.raises(UsageError) as exc:
        choose_pgbouncer(provider="local", pgbouncer=(1, 24))
    message = str(exc.value)
    assert "PgBouncer 1.24 was asked for" in message
    assert "(/opt/pgbouncer/bin/pgbouncer) is 1.18.0" in message
    assert "--provider docker --pgbouncer 1.24" in message
    # No image carries 1.23: only installing it here can give it.
    with pytest.raises(UsageError) as exc:
        choose_pgbouncer(provider="local", pgbouncer=(1, 23))
    assert "--provider docker" not in str(exc.value)
    assert "install PgBouncer 1.23 here" in str(exc.value)


def test_the_external_provider_starts_no_pgbouncer_to_choose() -> None:
    with pytest.raises(UsageError, match="the external provider starts none"):
        choose_pgbouncer(provider="external", pgbouncer=(1, 24))


def test_max_prepared_statements_is_checked_against_the_pgbouncer_chosen() -> None:
    def docker(
        *, pg_version: int | None, pgbouncer: tuple[int, int], image: str | None = None
    ) -> str | None:
        return choose(
            provider="docker",
            pg_version=pg_version,
            image=image,
            pg_bin=None,
            pgbouncer_keys=PREPARED,
            where="plan.toml: [pgbouncer]",
            pgbouncer=pgbouncer,
        )

    # PostgreSQL 15's image carries 1.18, and 1.24 runs beside it.
    assert docker(pg_version=15, pgbouncer=(1, 24)) == image_for(15)
    # PostgreSQL 17's image carries 1.24, and 1.18 is asked for: refused, naming 1.21.
    for image in (None, "mine:1"):
        with pytest.raises(UsageError, match=r"PgBouncer 1\.18 does not know .* PgBouncer 1\.21"):
            docker(pg_version=17, pgbouncer=(1, 18), image=image)


def test_the_command_line_passes_the_pgbouncer_image_to_the_docker_provider_only() -> None:
    parser = build_parser()
    args = parser.parse_args(["gate", "--plan", "p", "--provider", "docker", "--pgbouncer", "1.24"])
    assert docker_options(args) == {"pgbouncer_image": image_for(17)}
    args = parser.parse_args(
        ["up", "--provider", "docker", "--pg-version", "17", "--pgbouncer", "1.18"]
    )
    assert docker_options(args) == {"image": image_for(17), "pgbouncer_image": image_for(15)}
    # An unknown version is refused before the PostgreSQL options are even looked at.
    args = argparse.Namespace(provider="docker", pg_version=16, image=None, pg_bin=None,
                              pgbouncer=(1, 99))  # fmt: skip
    with pytest.raises(UsageError, match=r"PgBouncer 1\.99 is in no image here"):
        choose_images(args, None)


def _plan(tmp_path: Path) -> Path:
    directory = tmp_path / "plan"
    for folder in ("up", "down"):
        (directory / folder).mkdir(parents=True)
        (directory / folder / "001_s.sql").write_text("SELECT 1;\n")
    (directory / "plan.toml").write_text(
        'name = "p"\n'
        + textwrap.dedent("""
            [pgbouncer.writer]
            pool_mode = "transaction"
            max_prepared_statements = 100
            """)
    )
    return directory


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--provider", "docker", "--pgbouncer", "1.19"], "PgBouncer 1.19 is in no image here"),
        (
            ["--provider", "docker", "--pg-version", "17", "--pgbouncer", "1.18"],
            "sets max_prepared_statements, which PgBouncer 1.18 does not know",
        ),
        (["--provider", "external", "--pgbouncer", "1.24"], "the external provider starts none"),
        (["--provider", "docker", "--pgbouncer", "one"], "give MAJOR.MINOR"),
    ],
)
def test_the_gate_refuses_a_pgbouncer_it_cannot_run_before_any_server_starts(
    tmp_path: Path, options: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(_plan(tmp_path)), *options],
        capture_output=True, text=True, check=False, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "starting" not in done.stderr


def test_a_plan_names_its_pgbouncer_and_the_option_overrides_it(tmp_path: Path) -> None:
    from harness.plan import load_plan

    directory = _plan(tmp_path)
    toml = directory / "plan.toml"
    toml.write_text(toml.read_text() + '\n[cluster]\npgbouncer = "1.24"\n')
    plan = load_plan(directory)
    assert plan.pgbouncer_version == (1, 24)
    parser = build_parser()
    args = parser.parse_args(["gate", "--plan", str(directory), "--provider", "docker"])
    assert choose_images(args, plan)[1] == image_for(17)
    args = parser.parse_args(
        ["gate", "--plan", str(directory), "--provider", "docker", "--pgbouncer", "1.18"]
    )
    # The option wins, and 1.18 does not know the plan's max_prepared_statements.
    with pytest.raises(UsageError, match=r"PgBouncer 1\.18 does not know"):
        choose_images(args, plan)


@pytest.mark.parametrize("value", ['"1"', "1.24", '"latest"', '"1.24.1"'])
def test_a_plan_pgbouncer_that_is_no_release_line_is_refused(tmp_path: Path, value: str) -> None:
    from harness.errors import PlanError
    from harness.plan import load_plan

    directory = _plan(tmp_path)
    toml = directory / "plan.toml"
    toml.write_text(toml.read_text() + f"\n[cluster]\npgbouncer = {value}\n")
    with pytest.raises(PlanError, match=r"\[cluster\] pgbouncer is a PgBouncer MAJOR\.MINOR"):
        load_plan(directory)
