"""``index.html``: the gate's findings as one self-contained page a reviewer reads.

One file with its CSS and plots inline (SVG) and nothing fetched: CI
artifacts are opened from a zip, offline, or behind a proxy that blocks CDNs.
The page leads with the verdict, the failed checks and the checks not run, then every check with
its reason and offenders, then the fingerprint differences grouped by the
comparison they came from, then the optional sections — the traffic timeline
and the load comparison — when the report has their data. Everything taken
from the report is escaped: offenders quote SQL and server messages.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from harness.phases import phases_html
from harness.report.schema import SCHEMA_VERSION, CheckEntry, GateDocument, LoadSummary, Traffic

__all__ = ["FINGERPRINT_CHECKS", "render_html"]

FINGERPRINT_CHECKS = (
    "backup.restores",
    "replica.matches_primary",
    "rollback.exact",
    "rollback.exact_on_replica",
    "roundtrip.migrate_again",
)
"""Checks whose offenders are differences between two fingerprints."""

_OBJECT = re.compile(r"^(?P<prefix>[^`]*)`(?P<object>[^`]+)`:?\s*(?P<rest>.*)$", re.DOTALL)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2125;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d5d9de;
padding-bottom:4px}
.verdict{display:inline-block;font-weight:700;font-size:20px;padding:6px 14px;border-radius:6px;
color:#fff}
.verdict.safe{background:#2f7d43}.verdict.unsafe{background:#b03a48}
.meta{color:#555;margin:8px 0}.meta span{margin-right:16px}
.check{background:#fff;border:1px solid #d5d9de;border-left:6px solid #2f7d43;border-radius:4px;
margin:8px 0;padding:8px 12px}
.check.fail{border-left-color:#b03a48}.check.warn{border-left-color:#d99a2b}
.check.not_run{border-left-color:#8a9099;background:#f1f2f4}
.check h3{font-size:15px;margin:0;font-family:ui-monospace,Menlo,Consolas,monospace}
.badge{font:700 11px/1 system-ui,sans-serif;padding:3px 6px;border-radius:3px;margin-right:8px;
color:#fff;vertical-align:middle}
.badge.pass{background:#2f7d43}.badge.fail{background:#b03a48}.badge.warn{background:#d99a2b}
.badge.not_run{background:#8a9099}
.reason{margin:4px 0}
ul.offenders{margin:4px 0 0;padding-left:20px;font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12.5px;white-space:pre-wrap;word-break:break-word}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d5d9de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td code,li code{background:#eef0f3;padding:0 3px;border-radius:2px}
.plot{background:#fff;border:1px solid #d5d9de;margin:8px 0;padding:8px;overflow-x:auto}
.plot svg{max-width:100%;height:auto}
.note{background:#fff7e0;border:1px solid #e6c66e;padding:8px 12px;border-radius:4px}
tr.errors td{color:#b03a48}
footer{color:#777;font-size:12px;margin-top:32px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(name: str) -> str:
    return "check-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _badge(verdict: str) -> str:
    return "NOT RUN" if verdict == "not_run" else verdict.upper()


def _check(check: CheckEntry) -> str:
    offenders = "".join(f"<li>{_e(d)}</li>" for d in check.details)
    return (
        f'<section class="check {check.verdict}" id="{_anchor(check.name)}" '
        f'data-check="{_e(check.name)}" data-verdict="{check.verdict}">'
        f'<h3><span class="badge {check.verdict}">{_badge(check.verdict)}</span>'
        f"{_e(check.name)}</h3>"
        f'<p class="reason">{_e(check.reason)}</p>'
        + (f'<ul class="offenders">{offenders}</ul>' if offenders else "")
        + "</section>"
    )


def _header(doc: GateDocument) -> str:
    verdicts = ("pass", "fail", "warn", "not_run")
    counts = {v: sum(1 for c in doc.checks if c.verdict == v) for v in verdicts}
    word = "SAFE" if doc.verdict == "safe" else "NOT SAFE"
    meta = [f"{len(doc.checks)} checks", f"{counts['fail']} failed", f"{counts['warn']} warned"]
    if counts["not_run"]:
        meta.append(
            f"{counts['not_run']} not run"
            + (" (--require-all: they fail)" if doc.require_all else "")
        )
    meta.append(f"{doc.seconds:.1f} sec")
    meta += [
        f"{k}: {v}"
        for k, v in sorted(doc.extra.items())
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    ]
    failed = "".join(
        f'<li><a href="#{_anchor(c.name)}">{_e(c.name)}</a>: {_e(c.reason)}</li>'
        for c in doc.checks
        if c.verdict == "fail"
    )
    not_run = "".join(
        f'<li><a href="#{_anchor(c.name)}">{_e(c.name)}</a>: {_e(c.reason)}</li>'
        for c in doc.checks
        if c.verdict == "not_run"
    )
    return (
        f"<h1>plan {_e(doc.plan)}</h1>"
        f'<div class="verdict {doc.verdict}" id="verdict" data-verdict="{doc.verdict}">'
        f"{word}</div>"
        f'<p class="meta">{"".join(f"<span>{_e(m)}</span>" for m in meta)}</p>'
        + (f'<h2>Failed</h2><ul id="failed">{failed}</ul>' if failed else "")
        + (f'<h2>Not run</h2><ul id="not-run">{not_run}</ul>' if not_run else "")
    )


def _difference_row(detail: str) -> str:
    found = _OBJECT.match(detail)
    if found is None:
        return f"<tr><td></td><td>{_e(detail)}</td></tr>"
    what = (found["prefix"] + found["rest"]).strip()
    return f"<tr><td><code>{_e(found['object'])}</code></td><td>{_e(what)}</td></tr>"


def _fingerprints(checks: Iterable[CheckEntry]) -> str:
    parts = []
    for check in checks:
        if check.name not in FINGERPRINT_CHECKS or not check.details:
            continue
        rows = "".join(_difference_row(d) for d in check.details)
        parts.append(
            f'<h3 id="diff-{_e(check.name)}">{_e(check.name)}: {_e(check.reason)}</h3>'
            f"<table><tr><th>object</th><th>difference</th></tr>{rows}</table>"
        )
    body = "".join(parts) or "<p>No fingerprint comparison found a difference.</p>"
    return f'<h2 id="fingerprints">Fingerprint differences</h2>{body}'


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _traffic(traffic: Traffic, svg: str) -> str:
    rows = "".join(
        f'<tr class="{"errors" if s.errors else ""}"><td><code>{_e(s.step)}</code></td>'
        f"<td>{_e(s.phase)}</td><td class=num>{s.started_s:.2f}</td>"
        f"<td class=num>{s.seconds:.2f}</td><td class=num>{s.requests:,}</td>"
        f"<td class=num>{s.errors:,}</td><td class=num>{_ms(s.p50_ms)}</td>"
        f"<td class=num>{_ms(s.p99_ms)}</td><td class=num>{_ms(s.max_ms)}</td></tr>"
        for s in traffic.steps
    )
    baseline = ""
    if traffic.baseline_p99_ms is not None or traffic.baseline_max_ms is not None:
        baseline = (
            f"<p>Before migrating: p50 {_ms(traffic.baseline_p50_ms)} ms, "
            f"p99 {_ms(traffic.baseline_p99_ms)} ms, max {_ms(traffic.baseline_max_ms)} ms.</p>"
        )
    clients = f" from {traffic.clients} clients" if traffic.clients else ""
    return (
        f'<h2 id="traffic">Traffic during the migration{_e(clients)}</h2>{baseline}'
        f'<div class="plot">{svg}</div>'
        "<table><tr><th>step</th><th>phase</th><th>start (s)</th><th>seconds</th>"
        "<th>requests</th><th>errors</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>"
        f"{rows}</table>"
    )


def _load(load: LoadSummary, svgs: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.name)}</td><td class=num>{r.requests:,}</td>"
        f"<td class=num>{r.failures:,}</td><td class=num>{r.rps:,.1f}</td>"
        f"<td class=num>{_ms(r.p50_ms)}</td><td class=num>{_ms(r.p95_ms)}</td>"
        f"<td class=num>{_ms(r.p99_ms)}</td></tr>"
        for r in load.runs
    )
    plots = "".join(f'<div class="plot">{svg}</div>' for svg in svgs)
    return (
        f'<h2 id="load">Load comparison{": " + _e(load.title) if load.title else ""}</h2>'
        f"{plots}<table><tr><th>run</th><th>requests</th><th>failures</th><th>req/s</th>"
        f"<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>{rows}</table>"
    )


def render_html(
    doc: GateDocument,
    *,
    traffic_svg: str | None = None,
    load_svgs: list[str] | None = None,
    notes: Iterable[str] = (),
    version: str = "",
) -> str:
    """The page; plots are passed in so a caller decides whether to pay for matplotlib."""
    title = f"pgcutover: {doc.plan} — {'SAFE' if doc.verdict == 'safe' else 'NOT SAFE'}"
    body = [_header(doc)]
    body += [f'<p class="note">{_e(n)}</p>' for n in notes]
    body.append('<h2 id="checks">Checks</h2>')
    body += [_check(c) for c in doc.checks]
    body.append(_fingerprints(doc.checks))
    body.append(phases_html(doc.extra.get("phases")))
    if doc.traffic is not None:
        body.append(_traffic(doc.traffic, traffic_svg or ""))
    if doc.load is not None:
        body.append(_load(doc.load, load_svgs or []))
    body.append(
        f"<footer>pgcutover {_e(version)} · gate.json schema_version {SCHEMA_VERSION}</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No network at all: not even a favicon request.
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
