"""The report's plots, as inline SVG: one self-contained page, no CDN, no image files.

matplotlib runs on its Agg/SVG backends only (no display); each figure is
rendered to a string and closed, so a long sweep does not accumulate figures.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("svg")  # no display, no GUI toolkit: the SVG backend writes text only

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from harness.load.results import RunResult

__all__ = ["COLOURS", "over_time", "svg_of", "sweep_curves"]

COLOURS = {"baseline": "#b8860b", "target": "#1f6fb4"}
#: a curve of another plan's pooling (``--sweep-also``)
OTHER_COLOUR = "#7d3c98"


def svg_of(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: it is inlined


def over_time(runs: Sequence[RunResult], *, what: str) -> str:
    """``what`` is ``latency`` (p50 and p95, ms) or ``errors`` (failures per second)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.2), sharey=True)
    axes_list = list(axes) if len(runs) > 1 else [axes]
    for ax, run in zip(axes_list, runs, strict=True):
        seconds = [p.second for p in run.history]
        colour = COLOURS.get(run.architecture, "black")
        if what == "latency":
            ax.plot(seconds, [p.p95_ms for p in run.history], color=colour, label="p95")
            ax.plot(
                seconds, [p.p50_ms for p in run.history], color=colour, linestyle=":", label="p50"
            )
            ax.set_ylabel("ms (Locust's recent window)")
            ax.legend(loc="upper left", fontsize=8)
        else:
            ax.plot(seconds, [p.failures_per_s for p in run.history], color="#c0392b")
            ax.plot(seconds, [p.requests_per_s for p in run.history], color=colour, linestyle=":")
            ax.set_ylabel("per second (red: failures, dotted: requests)")
        ax.set_title(f"{run.architecture}: {run.users} instances", fontsize=10)
        ax.set_xlabel("seconds into the run")
        ax.grid(alpha=0.3)
    return svg_of(fig)


def sweep_curves(
    sweep: dict[str, list[RunResult]], *, break_error_rate: float, break_p95_ms: float
) -> str:
    """Error rate and p95 against concurrent instances, one line per architecture."""
    fig, (rate_ax, p95_ax) = plt.subplots(1, 2, figsize=(10.4, 3.4))
    for architecture, results in sweep.items():
        xs = [r.users for r in results]
        colour = COLOURS.get(architecture, OTHER_COLOUR)
        rate_ax.plot(
            xs, [100 * r.error_rate for r in results], marker="o", color=colour, label=architecture
        )
        p95_ax.plot(xs, [r.p95_ms for r in results], marker="o", color=colour, label=architecture)
    rate_ax.axhline(100 * break_error_rate, color="grey", linestyle="--", linewidth=0.8)
    p95_ax.axhline(break_p95_ms, color="grey", linestyle="--", linewidth=0.8)
    rate_ax.set_ylabel("failed requests (%)")
    p95_ax.set_ylabel("p95 (ms)")
    for ax in (rate_ax, p95_ax):
        ax.set_xlabel("concurrent instances")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return svg_of(fig)
