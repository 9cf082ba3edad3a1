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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.report.schema import LoadSummary, Traffic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["load_svgs", "traffic_svg"]

# Typed loosely: matplotlib types rcParams keys as a long Literal union.
_RC: Any = {"svg.fonttype": "path", "svg.hashsalt": "pgcutover", "font.size": 9.0}
_COLORS = ("#3b6ea8", "#e07b39", "#b03a48", "#4f9a5c", "#7a5ea8")


def _svg(fig: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline SVG in HTML takes the <svg> element alone: no XML declaration or DOCTYPE.
    return text[text.index("<svg") :]


def _figure(*, width: float, height: float, rows: int = 1) -> tuple[Figure, Sequence[object]]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def traffic_svg(traffic: Traffic) -> str:
    """Latency per step, in the order the steps ran: p50, p99 and max on a log scale."""
    from matplotlib.axes import Axes

    steps = traffic.steps
    fig, axes = _figure(width=max(6.0, 0.9 * len(steps) + 2.0), height=3.4)
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
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    ax.set_title("application latency during each step")
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
        fig, (top, bottom) = _figure(width=6.5, height=4.6, rows=2)
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
