"""Writing the reports side by side: ``gate.json``, ``junit.xml`` and ``index.html``.

All three come from one document that has been through :func:`redact` and
:func:`parse_gate`, so no renderer can show a password or a field the schema
does not have. A load comparison runs on its own schedule and leaves
``load/summary.json`` in the same directory; when the gate's document has no
``load`` section the page takes it from there, so ``harness report`` after a
comparison puts both on one page.

An optional section in a shape this version cannot read does not cost the
reader the rest: the page says what was wrong with it and renders the checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.dsn import redact
from harness.errors import ReportError
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.schema import (
    SCHEMA_VERSION,
    GateDocument,
    parse_gate,
    parse_load,
    parse_traffic,
)

__all__ = ["LOAD_SUMMARY", "ReportFiles", "read_gate", "render_reports", "write_reports"]

LOAD_SUMMARY = Path("load") / "summary.json"
_OPTIONAL = ("traffic", "load")


@dataclass(frozen=True)
class ReportFiles:
    gate_json: Path
    junit_xml: Path
    index_html: Path
    seconds: float

    @property
    def html_bytes(self) -> int:
        return self.index_html.stat().st_size


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pgcutover")
    except PackageNotFoundError:
        return "(not installed)"


def _core(document: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in document.items() if k not in _OPTIONAL}


def _sections(raw: Mapping[str, object], *, directory: Path) -> tuple[dict[str, object], list[str]]:
    """The document with its optional sections kept only when readable, and notes on the rest."""
    document = dict(raw)
    notes: list[str] = []
    summary = directory / LOAD_SUMMARY
    if document.get("load") is None and summary.is_file():
        try:
            document["load"] = json.loads(redact(summary.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            notes.append(f"{summary} is not JSON ({exc}); the load comparison is not shown")
    for key, parse in (("traffic", parse_traffic), ("load", parse_load)):
        if document.get(key) is None:
            continue
        try:
            parse(document[key], where=key)
        except ReportError as exc:
            notes.append(f"the {key} section is not shown: {exc}")
            document.pop(key)
    return document, notes


def _render(document: Mapping[str, object], *, directory: Path) -> tuple[GateDocument, str, str]:
    shown, notes = _sections(document, directory=directory)
    doc = parse_gate(shown)
    traffic_svg = load_svgs = None
    if doc.traffic is not None or doc.load is not None:
        from harness.report import plots

        traffic_svg = plots.traffic_svg(doc.traffic) if doc.traffic is not None else None
        load_svgs = plots.load_svgs(doc.load) if doc.load is not None else None
    page = render_html(
        doc, traffic_svg=traffic_svg, load_svgs=load_svgs, notes=notes, version=_version()
    )
    return doc, page, render_junit(doc)


def write_reports(document: Mapping[str, object], *, directory: Path) -> ReportFiles:
    """Write the three reports of one gate run into ``directory``; return where and how long."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    text = redact(json.dumps({"schema_version": SCHEMA_VERSION, **document}, indent=2))
    clean: dict[str, object] = json.loads(text)
    parse_gate(_core(clean))  # a broken core is a broken gate; a section is only not shown
    gate_json = directory / "gate.json"
    gate_json.write_text(text + "\n", encoding="utf-8")
    return _write_renderings(clean, directory=directory, gate_json=gate_json, started=started)


def _write_renderings(
    clean: Mapping[str, object], *, directory: Path, gate_json: Path, started: float
) -> ReportFiles:
    _, page, junit = _render(clean, directory=directory)
    index_html, junit_xml = directory / "index.html", directory / "junit.xml"
    index_html.write_text(page, encoding="utf-8")
    junit_xml.write_text(junit, encoding="utf-8")
    return ReportFiles(
        gate_json=gate_json,
        junit_xml=junit_xml,
        index_html=index_html,
        seconds=time.perf_counter() - started,
    )


def read_gate(path: Path) -> dict[str, object]:
    """A ``gate.json`` as written, or an error naming the file and what is wrong with it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file; run `harness gate` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: must hold a JSON object, not {type(raw).__name__}")
    parse_gate(_core(raw), where=str(path))
    return raw


def render_reports(directory: Path) -> ReportFiles:
    """Render ``index.html`` and ``junit.xml`` again from the ``gate.json`` in ``directory``.

    For a load comparison that ran after the gate: its summary joins the page.
    """
    started = time.perf_counter()
    gate_json = directory / "gate.json"
    raw = read_gate(gate_json)
    return _write_renderings(
        json.loads(redact(json.dumps(raw))),
        directory=directory,
        gate_json=gate_json,
        started=started,
    )
