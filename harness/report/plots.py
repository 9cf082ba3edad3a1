"""Plots for the report as inline SVG: readable offline, searchable, sharp when zoomed.

matplotlib is imported here only, and only when a report has something to
plot: its import costs a few tenths of a second, which a report of checks alone
should not pay. Figures are made with ``matplotlib.figure.Figure`` rather than
pyplot, so nothing global (a GUI backend, a current figure) is touched and
the gate can render from any thread. Text is drawn as paths
(``svg.fonttype = path``) so a browser without the font shows the same
picture, and the hash salt is fixed so the same data gives the same file.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.report.schema import LoadSummary, Traffic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["load_svgs", "traffic_svg", "warm_up"]

# Typed loosely: matplotlib types rcParams keys as a long Literal union.
_RC: Any = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pgcutover",
    "font.size": 9.0,
}
_COLORS = ("#3b6ea8", "#e07b39", "#b03a48", "#4f9a5c", "#7a5ea8")


def _import() -> None:
    import matplotlib.backends.backend_svg
    import matplotlib.figure  # noqa: F401


def warm_up() -> threading.Thread:
    """Import matplotlib in the background while a gate runs, for a report that plots.

    The import is most of a plot's cost (0.3 s on a quiet 2-core machine, several
    times that beside other work) and the gate spends its time waiting on
    servers, so it is paid there instead of after the verdict.
    """
    thread = threading.Thread(target=_import, name="pgcutover-plots-warm-up", daemon=True)
    thread.start()
    return thread


def _svg(fig: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline SVG in HTML takes the <svg> element alone: no XML declaration or DOCTYPE.
    return text[text.index("<svg") :]


def _figure(
    *, width: float, height: float, rows: int = 1, bottom: float = 0.12
) -> tuple[Figure, Sequence[object]]:
    import matplotlib
    from matplotlib.figure import Figure

    # Fixed margins rather than a layout engine: constrained layout measures every
    # label twice over and was half the time of a plot.
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=bottom, hspace=0.35)
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def traffic_svg(traffic: Traffic) -> str:
    """Latency per step, in the order the steps ran: p50, p99 and max on a log scale."""
    from matplotlib.axes import Axes

    steps = traffic.steps
    fig, axes = _figure(width=max(7.0, 0.9 * len(steps) + 3.0), height=3.8, bottom=0.3)
    ax = axes[0]
    assert isinstance(ax, Axes)
    width = 0.27
    xs = range(len(steps))
    series = (("p50", [s.p50_ms for s in steps]), ("p99", [s.p99_ms for s in steps]),
              ("max", [s.max_ms for s in steps]))  # fmt: skip
    for k, (label, values) in enumerate(series):
        ax.bar(
            [x + (k - 1) * width for x in xs],
            [max(v, 0.01) for v in values],
            width,
            label=f"{label} ms",
            color=_COLORS[k],
        )
    for value, label, style in (
        (traffic.baseline_p99_ms, "p99 before migrating", "--"),
        (traffic.baseline_max_ms, "max before migrating", ":"),
    ):
        if value is not None and value > 0:
            ax.axhline(value, color="#555555", linestyle=style, linewidth=1, label=label)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(
        [f"{s.step}\n{s.errors} errors" if s.errors else s.step for s in steps],
        rotation=30,
        ha="right",
    )
    for tick, step in zip(ax.get_xticklabels(), steps, strict=True):
        if step.errors:
            tick.set_color("#b03a48")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), fontsize=8, ncols=5, frameon=False)
    return _svg(fig)


def load_svgs(load: LoadSummary) -> list[str]:
    """Percentiles side by side; and, when runs kept a timeline, p95 and rps over time."""
    from matplotlib.axes import Axes

    runs = load.runs
    fig, axes = _figure(width=6.5, height=3.0)
    ax = axes[0]
    assert isinstance(ax, Axes)
    width = 0.8 / len(runs)
    labels = ("p50", "p95", "p99")
    for k, run in enumerate(runs):
        ax.bar(
            [i + (k - (len(runs) - 1) / 2) * width for i in range(len(labels))],
            [run.p50_ms, run.p95_ms, run.p99_ms],
            width,
            label=f"{run.name} ({run.rps:.0f} req/s, {run.failures} failures)",
            color=_COLORS[k % len(_COLORS)],
        )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=8)
    ax.set_title(load.title or "load comparison")
    out = [_svg(fig)]
    if any(run.timeline for run in runs):
        fig, (top, bottom) = _figure(width=6.5, height=4.6, rows=2, bottom=0.1)
        assert isinstance(top, Axes)
        assert isinstance(bottom, Axes)
        for k, run in enumerate(runs):
            if not run.timeline:
                continue
            color = _COLORS[k % len(_COLORS)]
            ts = [p.t_s for p in run.timeline]
            top.plot(ts, [p.p95_ms for p in run.timeline], label=run.name, color=color)
            bottom.plot(ts, [p.rps for p in run.timeline], label=run.name, color=color)
        top.set_ylabel("p95 (ms)")
        top.legend(fontsize=8)
        top.set_title("over the run")
        bottom.set_ylabel("requests/s")
        bottom.set_xlabel("seconds since start")
        out.append(_svg(fig))
    return out
