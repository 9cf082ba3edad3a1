"""Planting defects in a copy of a plan, and running the gate on a database copy.

Shared by the planted-defect scenarios: a defect is a few edits of a correct plan,
as its author could make them, and the one check it must fail with its message.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import Cluster, Endpoints
from harness.databases import connect, create_database, drop_database
from harness.gate import GateReport, cluster_login, gate_database
from harness.legacy import seed
from harness.plan import load_plan
from harness.testing.fix_legacy import fresh_name
from harness.traffic import TrafficOptions

PLANS = Path(__file__).resolve().parent.parent / "plans"


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in ``path`` (of the plan); ``old=None`` appends ``new``."""

    path: str
    old: str | None
    new: str


@dataclass(frozen=True)
class Defect:
    name: str
    check: str  # the one check that must fail
    message: str  # a part of one of its details
    edits: tuple[Edit, ...]


def new_step(number: int, name: str, *, up: str, down: str) -> tuple[Edit, Edit]:
    """A new last step: its up and its down file."""
    return (
        Edit(f"up/{number:03d}_{name}.sql", None, up),
        Edit(f"down/{number:03d}_{name}.sql", None, down),
    )


def planted(source: Path, target: Path, edits: tuple[Edit, ...]) -> Path:
    """A copy of the plan at ``source`` with ``edits`` made, at ``target``."""
    shutil.copytree(source, target)
    for edit in edits:
        path = target / edit.path
        text = path.read_text() if path.exists() else ""
        if edit.old is None:
            path.write_text(text + edit.new)
            continue
        assert edit.old in text, f"{edit.old!r} not in {edit.path}"
        path.write_text(text.replace(edit.old, edit.new, 1))
    return target


TRAFFIC_CLIENTS = 4  # enough to write every table the workload writes during each step
TRAFFIC_BASELINE = 0.3  # sec before the first step: the defects are in the steps, not before
MODES = ("no traffic", "traffic")  # the gate's two modes; "traffic" is the default
# Read from the catalog of the migrated database alone: the application's traffic cannot
# change what they see, so a planted defect of theirs runs without it, and the plans that
# plant several at once run with it (test_defects.py: the quiet changes, the harmless plan).
CATALOG_CHECKS = frozenset(
    {
        "foreign_keys.hold",
        "tables.intact",
        "layout.as_planned",
        "privileges.granted",
        "dependencies.resolve",
        "connections.room",
        "settings.for_sessions",
    }
)


def modes_for(check: str) -> tuple[str, ...]:
    """The modes a planted defect of ``check`` is gated in."""
    return ("no traffic",) if check in CATALOG_CHECKS else MODES


def run_gate(
    plan_dir: Path,
    cluster: Cluster,
    endpoints: Endpoints,
    tmp: Path,
    *,
    traffic: bool = False,
    clients: int = TRAFFIC_CLIENTS,
) -> GateReport:
    """The gate as the command runs it, with the application's traffic or without."""
    report = GateReport(plan=plan_dir.name)
    with _role_limits_kept(cluster):
        _gate_into(report, plan_dir, cluster, endpoints, tmp, traffic=traffic, clients=clients)
    return report


@contextmanager
def _role_limits_kept(cluster: Cluster) -> Iterator[None]:
    """Roles are the cluster's, and the gate ends migrated (its round trip migrates again):
    a role's connection limit, password validity or powers a planted step set would meet
    the next test's baseline. Put back as they were."""
    with connect(cluster.endpoints.primary) as conn:
        before = conn.execute(_ROLE_LIMITS).fetchall()
    try:
        yield
    finally:
        with connect(cluster.endpoints.primary) as conn:
            known = [name for name, *_ in before]
            conn.execute(
                # the roles the gate's plan created get the defaults they were created with
                "UPDATE pg_authid SET rolconnlimit = -1, rolvaliduntil = NULL,"
                " rolcreaterole = false, rolcreatedb = false, rolbypassrls = false"
                " WHERE rolname !~ '^pg_' AND rolname <> ALL(%s)",
                (known,),
            )
            for name, *kept in before:
                conn.execute(
                    "UPDATE pg_authid SET rolconnlimit = %s, rolvaliduntil = %s,"
                    " rolcreaterole = %s, rolcreatedb = %s, rolbypassrls = %s"
                    " WHERE rolname = %s",
                    (*kept, name),
                )


_ROLE_LIMITS = (
    "SELECT rolname, rolconnlimit, rolvaliduntil, rolcreaterole, rolcreatedb, rolbypassrls"
    " FROM pg_authid WHERE rolname !~ '^pg_'"
)


def _gate_into(
    report: GateReport,
    plan_dir: Path,
    cluster: Cluster,
    endpoints: Endpoints,
    tmp: Path,
    *,
    traffic: bool,
    clients: int,
) -> None:
    gate_database(
        load_plan(plan_dir),
        endpoints,
        wait_for_replica=cluster.wait_for_replica,
        emit=lambda _c: None,
        progress=lambda _m: None,
        report=report,
        backup_dir=tmp / "backups",
        login=cluster_login(cluster, endpoints),
        scratch=cluster.scratch_server,
        traffic=TrafficOptions(
            clients=clients, baseline=TRAFFIC_BASELINE, allow_users=cluster.allow_users
        )
        if traffic
        else None,
    )


def failed(report: GateReport) -> dict[str, list[str]]:
    """The failed checks with their details."""
    return {c.name: list(c.details) for c in report.checks if c.verdict == "fail"}


@contextmanager
def seeded_template(cluster: Cluster, dump: Path, *, prefix: str) -> Iterator[str]:
    """A database loaded from ``dump`` once (its roles made as the gate makes them), for
    :func:`copy_of` to copy for each test; its name."""
    name = fresh_name(f"{prefix}_template")
    dsn = create_database(cluster.endpoints.primary, name)
    try:
        seed(dsn, legacy=dump, create_roles=True)
        yield name
    finally:
        drop_database(cluster.endpoints.primary, name)


@contextmanager
def copy_of(cluster: Cluster, template: str, *, prefix: str) -> Iterator[Endpoints]:
    """A fresh copy of ``template``, replayed on the replica, dropped after."""
    name = fresh_name(prefix)
    create_database(cluster.endpoints.primary, name, template=template)
    cluster.wait_for_replica()
    try:
        yield cluster.endpoints.for_database(name)
    finally:
        drop_database(cluster.endpoints.primary, name)
