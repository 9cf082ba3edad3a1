"""Reports people read: ``gate.json`` (versioned), ``junit.xml`` and ``index.html``.

``write_reports`` writes all three next to each other from the gate's document;
``render_reports`` renders the page and junit again from a ``gate.json`` on disk.
"""

from harness.report.schema import SCHEMA_VERSION, GateDocument, parse_gate
from harness.report.write import LOAD_SUMMARY, ReportFiles, read_gate, render_reports, write_reports

__all__ = [
    "LOAD_SUMMARY",
    "SCHEMA_VERSION",
    "GateDocument",
    "ReportFiles",
    "parse_gate",
    "read_gate",
    "render_reports",
    "write_reports",
]
