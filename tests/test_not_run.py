"""Checks that could not run: named by the paths there are, counted, reported, required.

No server here: the decisions are pure functions of the cluster's endpoints and
of the checks a gate reported; the gate against a server without a replica or
pooler is in scenarios/test_gate_external.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.cluster import Endpoints
from harness.gate import GateReport
from harness.invariants import Check
from harness.invariants.acting import Login
from harness.invariants.not_run import (
    REPLICA_CHECKS,
    TRAFFIC_CHECKS,
    LoginsTried,
    not_run_in_gate,
    not_run_in_verify,
    not_run_without_writes,
    path_labels,
)
from harness.report import parse_gate, write_reports
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.verdict import verdict_line

PRIMARY = "postgresql://postgres@127.0.0.1:5432/shop"
REPLICA = "postgresql://postgres@127.0.0.1:5433/shop"
WRITER = "postgresql://postgres@127.0.0.1:6432/shop"
READER = "postgresql://postgres@127.0.0.1:6433/shop"

LOCAL = Endpoints(primary=PRIMARY, replica=REPLICA, writer=WRITER, reader=READER)
ALONE = Endpoints(primary=PRIMARY, replica=PRIMARY, writer=PRIMARY, reader=PRIMARY)
WITH_REPLICA = Endpoints(primary=PRIMARY, replica=REPLICA, writer=PRIMARY, reader=REPLICA)


@pytest.mark.parametrize(
    ("endpoints", "writer", "reader"),
    [
        (LOCAL, "PgBouncer writer", "PgBouncer reader"),
        (ALONE, "direct to the primary", "direct to the primary"),
        (WITH_REPLICA, "direct to the primary", "direct to the replica"),
    ],
)
def test_paths_are_named_by_where_they_lead(endpoints: Endpoints, writer: str, reader: str) -> None:
    labels = path_labels(endpoints)
    assert (labels["writer"], labels["reader"]) == (writer, reader)
    assert labels["primary"] == "direct to the primary"


def test_a_server_alone_costs_the_replica_and_pooler_checks() -> None:
    gate = not_run_in_gate(ALONE, replica=False, traffic=True)
    verify = not_run_in_verify(baseline=True, replica=False)
    names = {c.name for c in gate + verify}
    assert names == {*REPLICA_CHECKS, "pooler.sessions_exercised"}
    for check in gate + verify:
        assert check.verdict == "not_run"
        assert check.reason.startswith("not run: ")
        assert check.details[0].startswith("to run it: ")
    replica = next(c for c in verify if c.name == "replica.matches_primary")
    assert "DATABASE_READONLY_URL" in replica.details[0]


def test_the_full_cluster_with_traffic_leaves_nothing_out() -> None:
    assert not_run_in_gate(LOCAL, replica=True, traffic=True) == []
    assert not_run_in_verify(baseline=True, replica=True) == []


def test_no_traffic_costs_the_traffic_checks_and_names_the_flag() -> None:
    skipped = not_run_in_gate(LOCAL, replica=True, traffic=False)
    assert tuple(c.name for c in skipped) == TRAFFIC_CHECKS
    assert all("--no-traffic" in c.reason for c in skipped)


def test_without_a_baseline_the_comparisons_say_how_to_get_one() -> None:
    skipped = not_run_in_verify(baseline=False, replica=True)
    assert "data.unchanged" in {c.name for c in skipped}
    assert all("--baseline" in c.details[0] for c in skipped)


def _report(*, require_all: bool) -> GateReport:
    checks = [
        Check("migrate.steps", "pass", "all 6 steps applied"),
        *not_run_in_gate(ALONE, replica=False, traffic=True),
    ]
    return GateReport(plan="kct", checks=checks, seconds=3.9, require_all=require_all)


def test_the_verdict_line_counts_the_checks_not_run() -> None:
    report = _report(require_all=False)
    assert report.safe
    assert report.exit_code == 0
    assert verdict_line(report) == "plan 'kct': SAFE — 2 checks not run in 3.9 sec"


def test_require_all_makes_a_check_not_run_fail_the_gate() -> None:
    report = _report(require_all=True)
    assert not report.safe
    assert report.exit_code == 1
    assert "NOT SAFE (2 checks not run, and --require-all fails them)" in verdict_line(report)
    report.checks.append(Check("rollback.exact", "fail", "the rollback is not exact"))
    assert "NOT SAFE (1 check failed, 2 checks not run" in verdict_line(report)


def _schema() -> dict[str, Any]:
    text = resources.files("harness.report").joinpath("gate.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@pytest.mark.parametrize("require_all", [False, True])
def test_every_report_lists_the_checks_not_run(tmp_path: Path, *, require_all: bool) -> None:
    document = _report(require_all=require_all).to_json()
    jsonschema.validate(document, _schema())
    assert document["not_run"] == ["rollback.exact_on_replica", "pooler.sessions_exercised"]
    assert document["verdict"] == ("unsafe" if require_all else "safe")
    files = write_reports(document, directory=tmp_path)
    doc = parse_gate(json.loads(files.gate_json.read_text()))
    assert doc.not_run == ("rollback.exact_on_replica", "pooler.sessions_exercised")

    suite = ET.fromstring(render_junit(doc)).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    case = cases["rollback.exact_on_replica"]
    if require_all:
        assert (suite.get("skipped"), suite.get("failures")) == ("0", "2")
        failure = case.find("failure")
        assert failure is not None
        assert failure.get("type") == "not_run"
    else:
        assert (suite.get("skipped"), suite.get("failures")) == ("2", "0")
        skipped = case.find("skipped")
        assert skipped is not None
        assert (skipped.get("message") or "").startswith("not run: there is no streaming replica")
        assert "to run it: " in (skipped.text or "")

    page = render_html(doc)
    assert 'data-check="pooler.sessions_exercised" data-verdict="not_run"' in page
    assert '<ul id="not-run">' in page
    assert "2 not run" in page


def test_a_safe_verdict_that_require_all_makes_unsafe_is_refused_when_edited() -> None:
    document = _report(require_all=True).to_json()
    document["verdict"] = "safe"
    with pytest.raises(Exception, match="its checks make it 'unsafe'"):
        parse_gate(document)


def test_a_version_1_report_is_still_read() -> None:
    document = _report(require_all=False).to_json()
    document.update(schema_version=1, checks=[c for c in document["checks"][:1]])  # type: ignore[index]
    del document["not_run"], document["require_all"]
    assert parse_gate(document).not_run == ()


def test_roles_without_a_known_login_are_named_as_not_logged_in() -> None:
    known = {"app_rw": Login(PRIMARY, "directly to the primary")}
    tried = LoginsTried(known.get)
    assert tried("app_rw") is not None
    assert tried("app_ro") is None
    assert tried("app_ro") is None
    (check,) = tried.not_run()
    assert check.name == "privileges.logged_in"
    assert "no login of app_ro is known" in check.reason
    assert "--login ROLE=DSN" in check.details[0]
    assert LoginsTried(known.get).not_run() == []


def test_a_workload_without_writes_has_no_writes_to_check() -> None:
    undeclared = not_run_without_writes(declared=False)
    assert undeclared.name == "traffic.writes_kept"
    assert undeclared.verdict == "not_run"
    assert "has no [workload]" in undeclared.reason
    assert "no write query" in not_run_without_writes(declared=True).reason
