"""``tune.html``: the tune's candidates on one page, so a reviewer sees the search, not a verdict.

Each measured candidate is a point at its server connections (the cost the search
minimises) against its successful requests' p95 and its pool errors, with the
baseline's numbers and the plan's targets drawn across; a table beside gives each
candidate's settings. Built from ``tune.json``'s document, so it can be drawn again
from a saved one.
"""

from __future__ import annotations

import html
from typing import Any

import matplotlib.pyplot as plt

from harness.load.plots import COLOURS, svg_of

__all__ = ["candidates_svg", "tune_html"]


def _p95(run: dict[str, Any]) -> float:
    value = run.get("succeeded_p95_ms")
    return float(value if value is not None else run["p95_ms"])


def candidates_svg(doc: dict[str, Any], *, p95_reduction: float, error_reduction: float) -> str:
    """Successful p95 and pool errors of each candidate against its server connections."""
    trials = doc["trials"]
    fig, (p95_ax, err_ax) = plt.subplots(1, 2, figsize=(10.4, 3.4))
    for trial in trials:
        x = trial["server_connections"]
        colour = "#2e8b57" if trial["meets"] else COLOURS["target"]
        p95_ax.scatter([x], [_p95(trial["run"])], color=colour)
        err_ax.scatter([x], [100 * trial["run"]["pool_error_rate"]], color=colour)
    base = doc.get("baseline")
    if base is not None:
        wanted = _p95(base) * (1 - p95_reduction)
        p95_ax.axhline(_p95(base), color=COLOURS["baseline"], label="baseline")
        p95_ax.axhline(wanted, color="grey", linestyle="--", label="target")
        errors = 100 * base["pool_error_rate"]
        err_ax.axhline(errors, color=COLOURS["baseline"], label="baseline")
        err_ax.axhline(errors * (1 - error_reduction), color="grey", linestyle="--", label="target")
    p95_ax.set_ylabel("successful requests' p95 (ms)")
    err_ax.set_ylabel("pool errors (% of requests)")
    for ax in (p95_ax, err_ax):
        ax.set_xlabel("server connections (both PgBouncers)")
        ax.grid(alpha=0.3)
        if base is not None:
            ax.legend(fontsize=8)
    return svg_of(fig)


def tune_html(doc: dict[str, Any], *, p95_reduction: float, error_reduction: float) -> str:
    """One self-contained page (inline SVG, nothing fetched)."""
    rows = []
    for number, trial in enumerate(doc["trials"], start=1):
        cand, run = trial["candidate"], trial["run"]
        settings = ", ".join(f"{k} {v}" for k, v in cand.items())
        rows.append(
            "<tr>"
            f"<td>{number}</td><td>{trial['server_connections']}</td>"
            f"<td>{html.escape(settings)}</td>"
            f"<td>{100 * run['pool_error_rate']:.1f} %</td><td>{_p95(run):.1f} ms</td>"
            f"<td>{'meets both' if trial['meets'] else 'misses'}</td>"
            "</tr>"
        )
    found = doc.get("snippet")
    plot = (
        candidates_svg(doc, p95_reduction=p95_reduction, error_reduction=error_reduction)
        if doc["trials"]
        else "<p>No candidate was measured.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>harness load tune: {html.escape(doc['plan'])}</title></head><body>"
        f"<h1>Pooling candidates for plan {html.escape(doc['plan'])} at {doc['users']} "
        f"instances</h1><p>{len(doc['trials'])} measured, {len(doc['pruned'])} pruned by the "
        f"capacity arithmetic, {doc['untried']} left untried, in {doc['seconds']} s.</p>"
        f"{plot}<table border='1' cellpadding='4'><tr><th>#</th><th>server connections</th>"
        "<th>settings</th><th>pool errors</th><th>successful p95</th><th>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
        + (
            f"<h2>The configuration found</h2><pre>{html.escape(found)}</pre>"
            if found
            else "<p>No candidate met both targets.</p>"
        )
        + "</body></html>\n"
    )
