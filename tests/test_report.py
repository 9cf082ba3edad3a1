"""The reports from documents built here: gate.json's schema, junit.xml, index.html.

The optional sections (traffic, load comparison) are filled with data made up
in the shape ``harness.report.schema`` documents, since the runs that produce
them are not part of this test.
"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ReportError
from harness.report import SCHEMA_VERSION, parse_gate, read_gate, render_reports, write_reports
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.testing.fix_cluster import in_ci


def _gate(**extra: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "plan": "billing-split",
        "verdict": "unsafe",
        "failed": ["privileges.tried", "rollback.exact"],
        "seconds": 4.2,
        "provider": "local",
        "scale": 1,
        "checks": [
            {
                "name": "lint.squawk",
                "verdict": "warn",
                "reason": "squawk advises",
                "details": ["up/001_x.sql: prefer-robust-stmts"],
            },
            {
                "name": "migrate.steps",
                "verdict": "pass",
                "reason": "all 2 steps applied",
                "details": [],
            },
            {
                "name": "privileges.tried",
                "verdict": "fail",
                "reason": "1 of the planned privileges do not hold when tried",
                "details": ["billing_app cannot DELETE on ledger.entries: permission denied"],
            },
            {
                "name": "rollback.exact",
                "verdict": "fail",
                "reason": "the rollback does not restore the database as it was",
                "details": [
                    "unexpected schema `ledger`",
                    "`public.entries`: expected in public, found in ledger",
                    "<script>alert(1)</script> in a server message",
                ],
            },
        ],
        **extra,
    }


TRAFFIC = {
    "clients": 4,
    "baseline": {"p50_ms": 0.8, "p99_ms": 2.5, "max_ms": 6.0},
    "steps": [
        {"step": "up/001_schema.sql", "phase": "migrate", "started_s": 0.0, "seconds": 0.2,
         "requests": 180, "errors": 0, "p50_ms": 0.9, "p99_ms": 3.1, "max_ms": 7.2},
        {"step": "up/002_move.sql", "phase": "migrate", "started_s": 0.2, "seconds": 1.4,
         "requests": 95, "errors": 12, "p50_ms": 14.0, "p99_ms": 880.0, "max_ms": 1210.0},
        {"step": "down/002_move.sql", "phase": "rollback", "started_s": 1.6, "seconds": 0.3,
         "requests": 200, "errors": 0, "p50_ms": 1.0, "p99_ms": 4.0, "max_ms": 9.0},
    ],
}  # fmt: skip

LOAD = {
    "title": "split reads vs. all on the writer",
    "runs": [
        {"name": "split", "requests": 12000, "failures": 0, "rps": 398.0, "p50_ms": 4.0,
         "p95_ms": 11.0, "p99_ms": 19.0,
         "timeline": [{"t_s": 0, "rps": 380.0, "p95_ms": 10.0},
                      {"t_s": 5, "rps": 401.0, "p95_ms": 12.0}]},
        {"name": "writer-only", "requests": 9000, "failures": 3, "rps": 301.0, "p50_ms": 7.0,
         "p95_ms": 25.0, "p99_ms": 41.0},
    ],
}  # fmt: skip


def _schema() -> dict[str, Any]:
    text = resources.files("harness.report").joinpath("gate.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- gate.json ------------------------------------------------------------------------
def test_full_document_is_valid_for_both_readers() -> None:
    doc = _gate(traffic=TRAFFIC, load=LOAD)
    jsonschema.validate(doc, _schema())
    parsed = parse_gate(doc)
    assert parsed.failed == ("privileges.tried", "rollback.exact")
    assert parsed.traffic is not None
    assert [s.errors for s in parsed.traffic.steps] == [0, 12, 0]
    assert parsed.load is not None
    assert [r.name for r in parsed.load.runs] == ["split", "writer-only"]
    assert parsed.extra == {"provider": "local", "scale": 1}


def _set(path: str, value: object) -> dict[str, Any]:
    doc = _gate(traffic=copy.deepcopy(TRAFFIC), load=copy.deepcopy(LOAD))
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("schema_version", 3, "schema_version 3"),
        ("verdict", "maybe", "gate.json.verdict"),
        ("checks.1.verdict", "ok", "gate.json.checks[1].verdict"),
        ("checks.2.details", [1], "gate.json.checks[2].details"),
        ("seconds", -1, "gate.json.seconds"),
        ("traffic.steps.1.p99_ms", "fast", "gate.json.traffic.steps[1].p99_ms"),
        ("traffic.steps.0.errors", 1.5, "gate.json.traffic.steps[0].errors"),
        ("load.runs.0.rps", None, "gate.json.load.runs[0].rps"),
        ("load.runs", [], "gate.json.load.runs is empty"),
    ],
)
def test_a_malformed_field_is_named_by_both_readers(path: str, value: object, named: str) -> None:
    doc = _set(path, value)
    with pytest.raises(ReportError) as caught:
        parse_gate(doc)
    assert named in str(caught.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema())


def test_a_verdict_its_checks_contradict_is_refused() -> None:
    doc = _gate(verdict="safe")
    with pytest.raises(ReportError, match="says 'safe' but its checks make it 'unsafe'"):
        parse_gate(doc)


# -- junit.xml -----------------------------------------------------------------------
def test_junit_has_each_check_as_a_case_with_its_reason_and_offenders() -> None:
    root = ET.fromstring(render_junit(parse_gate(_gate())))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["lint.squawk", "migrate.steps", "privileges.tried", "rollback.exact"]
    failure = cases["rollback.exact"].find("failure")
    assert failure is not None
    assert failure.get("message") == "the rollback does not restore the database as it was"
    assert "- `public.entries`: expected in public, found in ledger" in (failure.text or "")
    assert cases["migrate.steps"].find("failure") is None
    warned = cases["lint.squawk"].find("system-out")
    assert warned is not None
    assert (warned.text or "").startswith("WARN: squawk advises")
    assert cases["privileges.tried"].get("classname") == "pgcutover.billing-split.privileges"


# -- index.html ----------------------------------------------------------------------
def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-check="([^"]+)" data-verdict="(\w+)"', page))


def test_page_shows_verdict_every_check_and_the_fingerprint_differences() -> None:
    page = render_html(parse_gate(_gate()))
    assert 'id="verdict" data-verdict="unsafe">NOT SAFE<' in page
    assert _sections(page) == {
        "lint.squawk": "warn",
        "migrate.steps": "pass",
        "privileges.tried": "fail",
        "rollback.exact": "fail",
    }
    diffs = page[page.index('id="fingerprints"') :]
    assert "<td><code>public.entries</code></td><td>expected in public, found in ledger</td>" in (
        diffs
    )
    assert "<td><code>ledger</code></td><td>unexpected schema</td>" in diffs
    # Offenders quote server messages: they are text, never markup.
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Without their data, the optional sections are not there at all.
    assert 'id="traffic"' not in page
    assert 'id="load"' not in page


def test_page_fetches_nothing() -> None:
    from harness.report.write import _render

    _, page, _ = _render(_gate(traffic=TRAFFIC, load=LOAD), directory=Path("/nonexistent"))
    assert page.count("<svg") == 3
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)


def test_traffic_and_load_sections_render_their_numbers() -> None:
    from harness.report.write import _render

    _, page, _ = _render(_gate(traffic=TRAFFIC, load=LOAD), directory=Path("/nonexistent"))
    traffic = page[page.index('id="traffic"') : page.index('id="load"')]
    assert "from 4 clients" in traffic
    assert '<tr class="errors"><td><code>up/002_move.sql</code>' in traffic
    assert "<td class=num>1,210.0</td>" in traffic
    load = page[page.index('id="load"') :]
    assert "split reads vs. all on the writer" in load
    assert "<td>writer-only</td><td class=num>9,000</td><td class=num>3</td>" in load


def test_a_section_in_another_shape_is_noted_and_the_checks_still_render(tmp_path: Path) -> None:
    traffic: Any = copy.deepcopy(TRAFFIC)
    del traffic["steps"][1]["p99_ms"]
    files = write_reports(_gate(traffic=traffic), directory=tmp_path)
    page = files.index_html.read_text()
    assert "the traffic section is not shown: traffic.steps[1].p99_ms" in page
    assert len(_sections(page)) == 4
    assert 'id="traffic"' not in page
    # gate.json keeps what the gate wrote, for a newer renderer to read.
    assert "traffic" in json.loads(files.gate_json.read_text())


# -- writing -------------------------------------------------------------------------
def test_reports_are_written_side_by_side_without_passwords(tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    doc = _gate(dsn=f"postgresql://app:{secret}@127.0.0.1:5432/billing")
    doc["checks"][2]["details"].append(f"cannot connect to postgresql://app:{secret}@db/x")
    files = write_reports(doc, directory=tmp_path / "reports")
    assert files.html_bytes > 0
    for path in (files.gate_json, files.junit_xml, files.index_html):
        text = path.read_text()
        assert secret not in text, path.name
        assert "billing-split" in text, path.name
    assert read_gate(files.gate_json)["schema_version"] == SCHEMA_VERSION


def test_a_load_summary_beside_gate_json_joins_the_page_when_rendered_again(
    tmp_path: Path,
) -> None:
    write_reports(_gate(), directory=tmp_path)
    assert 'id="load"' not in (tmp_path / "index.html").read_text()
    (tmp_path / "load").mkdir()
    (tmp_path / "load/summary.json").write_text(json.dumps(LOAD))
    files = render_reports(tmp_path)
    page = files.index_html.read_text()
    assert 'id="load"' in page
    assert page.count("<svg") == 2
    assert len(_sections(page)) == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file; run `harness gate` first"),
        ("{not json", "not JSON"),
        ("[1, 2]", "must hold a JSON object, not list"),
        ('{"plan": "x", "verdict": "safe", "seconds": 1, "checks": [{"name": "a"}]}',
         "checks[0].verdict"),
    ],
)  # fmt: skip
def test_reading_a_broken_gate_json_names_the_file(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "gate.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReportError) as caught:
        read_gate(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=40, deadline=None, derandomize=in_ci())
@given(
    checks=st.lists(
        st.tuples(
            st.from_regex(r"[a-z_]{1,10}\.[a-z_]{1,12}", fullmatch=True),
            st.sampled_from(["pass", "fail", "warn"]),
            _text,
            st.lists(_text, max_size=3),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda c: c[0],
    )
)
def test_any_check_text_renders_as_text_in_every_report(
    checks: list[tuple[str, str, str, list[str]]],
) -> None:
    doc = {
        "plan": "p",
        "verdict": "unsafe" if any(v == "fail" for _, v, _, _ in checks) else "safe",
        "failed": [n for n, v, _, _ in checks if v == "fail"],
        "seconds": 1.0,
        "checks": [{"name": n, "verdict": v, "reason": r, "details": d} for n, v, r, d in checks],
    }
    parsed = parse_gate(doc)
    page = render_html(parsed)
    assert _sections(page) == {n: v for n, v, _, _ in checks}
    root = ET.fromstring(render_junit(parsed))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failures = {n: c.find("failure") for n, c in cases.items() if c.find("failure") is not None}
    for name, verdict, reason, _ in checks:
        assert (name in failures) == (verdict == "fail")
        failure = failures.get(name)
        if failure is not None:
            assert failure.get("message") == reason


# -- harness report --------------------------------------------------------------------
def test_harness_report_renders_again_and_names_a_missing_gate_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    assert main(["report", "--reports", str(tmp_path)]) == 2
    assert f"{tmp_path / 'gate.json'}: no such file" in capsys.readouterr().err
    (tmp_path / "gate.json").write_text(json.dumps(_gate()))
    assert main(["report", "--reports", str(tmp_path)]) == 0
    assert "index.html" in capsys.readouterr().err
    assert len(_sections((tmp_path / "index.html").read_text())) == 4
    assert ET.parse(tmp_path / "junit.xml").getroot().get("tests") == "4"
