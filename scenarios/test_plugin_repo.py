"""Another team's repository: a plan, a schema dump and their own tests, nothing else.

No conftest, no pytest configuration, nothing on ``PYTHONPATH``: pgcutover is
only installed, and ``pytest --pg-plan`` there turns the gate's checks into
items and gives their tests the cluster, the migrated database and connections
as the plan's roles. The plan is not the retailer's: a lending library adding an
audit schema, with one planted defect (the application role may not DELETE
books), so one run shows a passing check, a failing one with its offenders,
and the team's own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

DUMP = """\
CREATE TABLE public.authors (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.books (
    id bigserial PRIMARY KEY,
    author_id bigint NOT NULL REFERENCES public.authors (id),
    title text NOT NULL,
    published date
);
INSERT INTO public.authors (name) SELECT 'author ' || g FROM generate_series(1, 50) g;
INSERT INTO public.books (author_id, title, published)
     SELECT 1 + g % 50, 'book ' || g, date '2000-01-01' + g FROM generate_series(1, 500) g;
"""

PLAN_TOML = """\
name = "library-audit"
description = "an audit schema the lending desk writes to"

[layout]
schemas = ["audit"]
roles = ["library_app"]
new_tables = ["audit.loans_log"]

[rollback]
keeps_roles = ["library_app"]

[[privileges]]
role = "library_app"
on = "public.*"
allow = ["SELECT", "INSERT", "UPDATE", "DELETE"]

[[privileges]]
role = "library_app"
on = "audit"
allow = ["USAGE"]
deny = ["CREATE"]

[[privileges]]
role = "library_app"
on = "audit.loans_log"
allow = ["SELECT", "INSERT"]
deny = ["UPDATE", "DELETE"]
"""

UP = """\
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'library_app') THEN
        CREATE ROLE library_app;
    END IF;
END
$$;
CREATE SCHEMA audit;
CREATE TABLE audit.loans_log (
    id bigserial PRIMARY KEY,
    book_id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
GRANT USAGE ON SCHEMA audit TO library_app;
GRANT SELECT, INSERT ON audit.loans_log TO library_app;
GRANT USAGE ON SEQUENCE audit.loans_log_id_seq TO library_app;
-- The planted defect: DELETE is missing on books.
GRANT SELECT, INSERT, UPDATE ON public.books TO library_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.authors TO library_app;
GRANT USAGE ON SEQUENCE public.books_id_seq, public.authors_id_seq TO library_app;
"""

DOWN = """\
REVOKE ALL ON SEQUENCE public.books_id_seq, public.authors_id_seq FROM library_app;
REVOKE ALL ON public.books, public.authors FROM library_app;
DROP TABLE audit.loans_log;
REVOKE ALL ON SCHEMA audit FROM library_app;
DROP SCHEMA audit;
"""

TEAM_TESTS = """\
import psycopg
import pytest


def test_plan_is_the_one_given(pg_plan):
    assert pg_plan.name == "library-audit"


def test_app_reads_books_as_its_role(connect_as):
    conn = connect_as("library_app")
    assert conn.execute("SELECT count(*) FROM public.books").fetchone()[0] == 500


def test_app_appends_to_the_log_but_cannot_rewrite_it(connect_as):
    conn = connect_as("library_app")
    conn.execute("INSERT INTO audit.loans_log (book_id) VALUES (1)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit.loans_log")


def test_the_replica_has_the_new_table(connect_as):
    conn = connect_as("library_app", on="replica")
    assert conn.execute("SELECT count(*) FROM audit.loans_log").fetchone()[0] == 0
"""


def _team_repo(root: Path) -> Path:
    (root / "plans/library-audit/up").mkdir(parents=True)
    (root / "plans/library-audit/down").mkdir(parents=True)
    (root / "plans/library-audit/plan.toml").write_text(PLAN_TOML)
    (root / "plans/library-audit/up/001_audit.sql").write_text(UP)
    (root / "plans/library-audit/down/001_audit.sql").write_text(DOWN)
    (root / "tests").mkdir()
    (root / "tests/test_library.py").write_text(TEAM_TESTS)
    (root / "schema.sql").write_text(DUMP)
    return root


def _pytest(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_another_repository_gates_its_plan_with_pytest(tmp_path: Path) -> None:
    repo = _team_repo(tmp_path / "library")
    assert not list(repo.rglob("conftest.py"))
    done = _pytest(
        repo,
        "--pg-plan",
        "plans/library-audit",
        "--pg-legacy",
        "schema.sql",
        "--junitxml",
        "pytest.xml",
        "-rf",
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    gate = json.loads((repo / "reports/gate.json").read_text())
    schema = resources.files("harness.report").joinpath("gate.schema.json").read_text()
    jsonschema.validate(gate, json.loads(schema))
    assert (repo / "reports/index.html").read_text().count('class="check ') == len(gate["checks"])
    cases = ET.parse(repo / "pytest.xml").getroot().iter("testcase")
    outcome = {
        c.get("name"): "failed" if c.find("failure") is not None else "passed" for c in cases
    }
    # One item per gate check, named after it, with the gate's verdict.
    for check in gate["checks"]:
        expected = "failed" if check["verdict"] == "fail" else "passed"
        assert outcome.pop(check["name"]) == expected, check
    assert {c["name"] for c in gate["checks"] if c["verdict"] == "fail"} == {"privileges.tried"}
    # The failure message is the reason and every offender.
    assert "library_app cannot DELETE on public.books" in out
    assert "library_app cannot DELETE on public.authors" not in out
    # The team's own tests ran with the plugin's fixtures, and passed.
    assert outcome == {
        "test_plan_is_the_one_given": "passed",
        "test_app_reads_books_as_its_role": "passed",
        "test_app_appends_to_the_log_but_cannot_rewrite_it": "passed",
        "test_the_replica_has_the_new_table": "passed",
    }, out[-3000:]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        pytest.param(lambda plan: None, "plan.toml: missing", id="no-such-directory"),
        pytest.param(
            lambda plan: (plan / "plan.toml").write_text('name = "x"\n[layout\n'),
            "not valid TOML",
            id="invalid-toml",
        ),
        pytest.param(
            lambda plan: (plan / "down/001_audit.sql").unlink(),
            "has no rollback: add down/001_audit.sql",
            id="step-without-rollback",
        ),
    ],
)
def test_bad_plan_is_a_usage_error_naming_the_file(
    tmp_path: Path, break_it: object, expected: str
) -> None:
    repo = _team_repo(tmp_path / "library")
    plan = repo / "plans/library-audit"
    if expected.startswith("plan.toml: missing"):
        plan = repo / "plans/nowhere"
    else:
        assert callable(break_it)
        break_it(plan)
    done = _pytest(repo, "--pg-plan", str(plan.relative_to(repo)), "tests")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert f"--pg-plan {plan.relative_to(repo)}" in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert textwrap.dedent(done.stdout).strip() == ""
