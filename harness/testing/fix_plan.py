"""``--pg-plan``: a plan's gate checks as test items, and fixtures for a team's own tests.

With ``pytest --pg-plan plans/x [--pg-legacy dump.sql]`` in any repository
where pgcutover is installed, the session gets one test item per gate check,
named after it (``plans/x/plan.toml::privileges.tried``), whose failure message
is the check's reason and offenders; the gate's reports (``gate.json``,
``junit.xml``, ``index.html``) go to ``--pg-reports``.

The gate runs while the items are collected: which checks a gate has is
known only once it has run (a cluster without a replica has no replica checks,
a traffic run adds its own), and every check must be an item of its own. So
``--collect-only`` with ``--pg-plan`` runs the gate too.

A check the gate could not run here (no replica, no pooler) is a skipped item
whose reason says why and how to run it; with ``--pg-require-all`` (for CI) it
fails instead, as ``harness gate --require-all`` does.

A plan that does not load is a usage error before anything starts, naming the
file and the problem, as pytest reports a bad option.

Fixtures for the team's own tests (function scope unless said):

- ``pg_plan`` (session): the loaded :class:`~harness.plan.Plan`;
- ``migrated_database``: a fresh copy of the legacy database with the plan's steps
  applied, on primary and replica (a :class:`LegacyDatabase`);
- ``connect_as``: ``connect_as("app_rw")`` opens a connection to
  ``migrated_database`` as a plan role, closed after the test;
- and from the sibling plugins: ``cluster``, ``legacy_database``, ``empty_dsn``,
  ``primary_conn``, ``replica_conn``, ``writer_conn``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import psycopg
import pytest
from psycopg import sql

from harness.cluster import Cluster
from harness.connections import Conn
from harness.connections import connect as connect_server
from harness.databases import create_database, drop_database
from harness.dsn import redact
from harness.errors import HarnessError, InfrastructureError
from harness.invariants import Check
from harness.plan import Plan, load_plan
from harness.testing.fix_cluster import CLUSTER_POOLERS, missing_capability
from harness.testing.fix_legacy import LegacyDatabase, fresh_name

__all__ = ["GateCheckItem", "GatePlanFile", "connect_as", "migrated_database", "pg_plan"]

ConnectAs = Callable[..., Conn]
_PLAN = pytest.StashKey[Plan]()
_REPORTS = pytest.StashKey[Path]()
_WRITTEN = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgcutover", "pgcutover cluster")
    group.addoption(
        "--pg-plan",
        default=os.environ.get("PGCUTOVER_PLAN") or None,
        metavar="DIR",
        help="gate this plan directory: one test item per gate check",
    )
    group.addoption(
        "--pg-reports",
        default="reports",
        metavar="DIR",
        help="where the gate's gate.json, junit.xml and index.html go (default reports/)",
    )
    group.addoption(
        "--pg-require-all",
        action="store_true",
        default=False,
        help="a gate check that could not run (no replica, no pooler) fails instead of skipping",
    )


def pytest_configure(config: pytest.Config) -> None:
    legacy = config.getoption("--pg-legacy", default=None)
    if legacy and not Path(legacy).is_file():
        raise pytest.UsageError(
            f"--pg-legacy {legacy}: no such file; give a plain SQL dump or a pg_dump archive"
        )
    directory = config.getoption("--pg-plan", default=None)
    if not directory:
        return
    try:
        plan = load_plan(Path(directory), legacy=Path(legacy) if legacy else None)
    except HarnessError as exc:
        raise pytest.UsageError(f"--pg-plan {directory}: {exc}") from None
    config.stash[_PLAN] = plan
    if plan.legacy is not None and not legacy:
        # The plan's own dump seeds the fixtures' legacy database too, as --pg-legacy would.
        config.option.pg_legacy = str(plan.legacy)
    if plan.pgbouncer is not None:
        config.stash[CLUSTER_POOLERS] = plan.pgbouncer
    config.stash[_REPORTS] = Path(config.getoption("--pg-reports"))


def pytest_report_header(config: pytest.Config) -> str | None:
    plan = config.stash.get(_PLAN, None)
    if plan is None:
        return None
    return f"pgcutover: plan {plan.name!r} from {plan.directory}"


class GateFinding(Exception):
    """A gate check that failed; its message is the check's reason and offenders."""


class GateCheckItem(pytest.Item):
    """One check of the gate's report: passes, warns (passes, reason shown), fails, or is
    skipped when it could not run (fails under ``--pg-require-all``)."""

    def __init__(self, *, check: Check, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.check = check
        self.user_properties.append(("reason", check.reason))

    def runtest(self) -> None:
        if self.check.verdict == "fail":
            raise GateFinding(str(self.check))
        if self.check.verdict == "warn":
            self.add_report_section("call", "warning", str(self.check))
        if self.check.verdict == "not_run":
            if self.config.getoption("--pg-require-all"):
                raise GateFinding(f"{self.check} (--pg-require-all)")
            pytest.skip(" ".join([self.check.reason, *self.check.details]))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: object = None,
    ) -> str:
        if isinstance(excinfo.value, GateFinding):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"gate check {self.check.name}"


class GatePlanFile(pytest.File):
    """The plan's ``plan.toml``, whose items are the checks of one gate run."""

    def collect(self) -> Iterator[GateCheckItem]:
        from harness.gate import run_gate
        from harness.report import write_reports
        from harness.report.plots import warm_up

        config = self.config
        plan = config.stash[_PLAN]
        legacy = config.getoption("--pg-legacy", default=None)
        warm_up()
        try:
            report = run_gate(
                plan,
                provider=config.getoption("--pg-provider"),
                pg_bin=config.getoption("--pg-bin"),
                legacy=Path(legacy) if legacy else None,
                scale=config.getoption("--pg-scale"),
            )
        except InfrastructureError as exc:
            missing_capability(f"the gate of plan {plan.name!r} could not run: {exc}")
            raise  # unreachable: missing_capability always raises
        except HarnessError as exc:
            message = f"the gate of plan {plan.name!r} could not run: {exc}"
            raise self.CollectError(redact(message)) from None
        except psycopg.Error as exc:
            # A server error no check turned into a finding is the harness failing, not the plan.
            message = f"the gate of plan {plan.name!r} could not run: the server refused: {exc}"
            raise self.CollectError(redact(message).strip()) from None
        report.require_all = bool(config.getoption("--pg-require-all"))
        files = write_reports(report.to_json(), directory=config.stash[_REPORTS])
        config.stash[_WRITTEN] = files.index_html
        for check in report.checks:
            yield GateCheckItem.from_parent(self, name=check.name, check=check)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Put the gate's items first; before ``-k`` and ``-m`` deselect, so they apply to them."""
    plan = config.stash.get(_PLAN, None)
    if plan is None:
        return
    node = GatePlanFile.from_parent(session, path=(plan.directory / "plan.toml").resolve())
    session.ihook.pytest_collectstart(collector=node)
    report = session.ihook.pytest_make_collect_report(collector=node)
    session.ihook.pytest_collectreport(report=report)
    if report.passed:
        items[:0] = [i for i in report.result if isinstance(i, pytest.Item)]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    written = terminalreporter.config.stash.get(_WRITTEN, None)
    if written is not None:
        terminalreporter.write_line(
            f"pgcutover: gate.json, junit.xml and index.html written to {written.parent}"
        )


# -- fixtures for the team's own tests -------------------------------------------------
@pytest.fixture(scope="session")
def pg_plan(request: pytest.FixtureRequest) -> Plan:
    """The plan given with ``--pg-plan``."""
    plan = request.config.stash.get(_PLAN, None)
    if plan is None:
        missing_capability("this test needs a plan: run pytest with --pg-plan DIR")
        raise AssertionError("unreachable")
    return plan


@pytest.fixture
def migrated_database(
    cluster: Cluster, legacy_template_name: str, pg_plan: Plan
) -> Iterator[LegacyDatabase]:
    """A fresh copy of the legacy database with every step of the plan applied.

    A plan whose SQL names its database (``database = ...`` in plan.toml) gets a
    copy of that name, which must not exist yet: its ``ALTER DATABASE`` must
    reach the copy.
    """
    from harness.runner import Runner

    name = pg_plan.database or fresh_name("migrated")
    create_database(cluster.endpoints.primary, name, template=legacy_template_name)
    endpoints = cluster.endpoints.for_database(name)
    try:
        with Runner(pg_plan, endpoints.primary) as runner:
            runner.migrate()
        cluster.allow_users(pg_plan.layout.roles)
        cluster.wait_for_replica()
        yield LegacyDatabase(name=name, endpoints=endpoints)
    finally:
        drop_database(cluster.endpoints.primary, name)


@pytest.fixture
def connect_as(migrated_database: LegacyDatabase) -> Iterator[ConnectAs]:
    """``connect_as(role, on="primary"|"replica")``: a connection that acts as ``role``.

    The role is set first thing (``SET ROLE``): every statement runs
    with that role's privileges, as the application's would, without the plan
    having to give it a password. (A role that logs in with its own password is
    tested by connecting with it: this is for what a role may do, not how it
    authenticates.)
    """
    opened: list[Conn] = []

    def connect(role: str, *, on: Literal["primary", "replica"] = "primary") -> Conn:
        dsn = (
            migrated_database.endpoints.primary
            if on == "primary"
            else migrated_database.endpoints.replica
        )
        conn = connect_server(dsn, timeout=5)
        opened.append(conn)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        current = conn.execute("SELECT current_user").fetchone()
        assert current is not None
        assert current[0] == role, f"connected as {current[0]}, not {role}"
        return conn

    try:
        yield connect
    finally:
        for conn in opened:
            conn.close()
