"""``reports/load/``: the comparison as JSON for CI and as one HTML page for people.

The JSON holds every number the page shows; the page holds its plots inline
(SVG), so it can be attached to a ticket or opened offline. The closing note
states the outcome in sentences — whatever it is: a target the plan misses,
or a plan setting that caps the target, is said as plainly as a pass.
"""

from __future__ import annotations

import datetime
import html
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.load.capacity import capped_by, describe_pooling, limits
from harness.load.compare import CompareOutcome
from harness.load.confidence import interval
from harness.load.explain import cpu_lines, latency_lines, loop_lines, pooler_lines, side
from harness.load.pinning import placement_lines
from harness.load.projection import project, projection_lines
from harness.load.results import KINDS, RunResult, reduction

__all__ = ["break_point", "build_report", "closing_note", "write_report"]

AGREEMENT_POINTS = 0.10


def break_point(results: list[RunResult], *, error_rate: float, p95_ms: float) -> int | None:
    """The fewest instances at which the architecture fails or slows past the bounds."""
    for result in sorted(results, key=lambda r: r.users):
        if result.error_rate > error_rate or result.p95_ms > p95_ms:
            return result.users
    return None


def _agreement(locust: float | None, pgbench: float | None) -> dict[str, Any]:
    if locust is None or pgbench is None:
        return {"comparable": False, "same_direction": None, "within_10_points": None}
    same = (locust >= 0) == (pgbench >= 0)
    return {
        "comparable": True,
        "same_direction": same,
        "within_10_points": abs(locust - pgbench) <= AGREEMENT_POINTS,
        "difference_points": round(100 * abs(locust - pgbench), 1),
    }


def build_report(outcome: CompareOutcome) -> dict[str, Any]:
    config = outcome.config
    base, target = outcome.runs["baseline"], outcome.runs["target"]
    report: dict[str, Any] = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": {
            "users": config.run.users,
            "spawn_rate": config.run.spawn_rate,
            "duration_s": config.run.duration,
            "seed": config.run.seed,
        },
        "environment": outcome.environment,
        "config": config.to_json(),
        "repeat": len(outcome.rounds),
        "architectures": {name: run.to_json() for name, run in outcome.runs.items()},
        "rounds": [
            {
                "round": number,
                "order": list(results),
                "architectures": {
                    name: run.to_json(history=False) for name, run in results.items()
                },
                "files": {name: f"round{number}/{name}_stats.csv" for name in results},
                "pgbouncer": [v.to_json() for v in views],
                "load_average": busy,
                "locust_cpu": cores,
            }
            for number, (results, views, busy, cores) in enumerate(
                zip(
                    outcome.rounds,
                    outcome.poolers or [[]] * len(outcome.rounds),
                    outcome.load_average or [{}] * len(outcome.rounds),
                    outcome.locust_cpu or [{}] * len(outcome.rounds),
                    strict=True,
                ),
                start=1,
            )
        ],
        "cpus": os.cpu_count(),
        "connections": {
            "open_ms": outcome.open_ms,
            "server_sessions": outcome.server_sessions,
        },
        "cpu_ms_per_request": outcome.node_cpu,
        "cpu_placement": outcome.placement,
        "intervals": _intervals(outcome),
        "reductions": {
            "pool_error_rate": reduction(base.pool_error_rate, target.pool_error_rate),
            "error_rate": reduction(base.error_rate, target.error_rate),
            "p95": reduction(base.p95_ms, target.p95_ms),
            "p50": reduction(base.p50_ms, target.p50_ms),
            "p99": reduction(base.p99_ms, target.p99_ms),
        },
        "targets": [v.to_json() for v in outcome.verdicts],
        "met": not outcome.missed,
        "missed": [v.reason for v in outcome.missed],
        "exit_code": outcome.exit_code,
        "pooling": describe_pooling(config),
        "capacity": {
            "limits": [x.to_json() for x in limits(config)],
            "capped_by": [x.describe() for x in capped_by(config, users=config.run.users)],
        },
    }
    if outcome.sweep:
        report["sweep"] = {
            "instances": list(config.sweep.instances),
            "duration_s": config.sweep.duration,
            "results": {
                name: [r.to_json(history=False) for r in results]
                for name, results in outcome.sweep.items()
            },
            "break_points": {
                name: break_point(
                    results,
                    error_rate=config.sweep.break_error_rate,
                    p95_ms=config.sweep.break_p95_ms,
                )
                for name, results in outcome.sweep.items()
            },
            "capped_by": {
                str(n): [x.describe() for x in capped_by(config, users=n)]
                for n in config.sweep.instances
            },
            # the pooling of each curve beyond the plan's own (--sweep-also)
            "pooling": outcome.sweep_pooling,
        }
    if outcome.pgbench is not None:
        pg = dict(outcome.pgbench)
        pg["agreement"] = {
            "errors": _agreement(report["reductions"]["pool_error_rate"], pg["error_reduction"]),
            "p95": _agreement(report["reductions"]["p95"], pg["p95_reduction"]),
        }
        report["reference"] = {"pgbench": pg}
    report["projection"] = project(report)
    report["closing_note"] = closing_note(report)
    report.update(report_page_section(outcome))
    return report


def _intervals(outcome: CompareOutcome) -> dict[str, dict[str, Any]]:
    """Each architecture's per-round numbers: mean and 95 % interval over the rounds."""
    shares = {"error_rate", "pool_error_rate"}  # the rest are times and counts: none below 0
    measures: dict[str, Callable[[RunResult], float | None]] = {
        "error_rate": lambda r: r.error_rate,
        "pool_error_rate": lambda r: r.pool_error_rate,
        "p95_ms": lambda r: r.p95_ms,
        "succeeded_p95_ms": lambda r: r.succeeded_p95_ms,
        "started_p95_ms": lambda r: r.started_p95_ms,
        "requests": lambda r: float(r.requests),
    }
    out: dict[str, dict[str, Any]] = {}
    for name in outcome.runs:
        out[name] = {}
        for key, measure in measures.items():
            values = [measure(r[name]) for r in outcome.rounds]
            known = [float(v) for v in values if v is not None]
            ceiling = 1.0 if key in shares else None
            out[name][key] = (
                interval(known, floor=0.0, ceiling=ceiling).to_json() if known else None
            )
    return out


def report_page_section(outcome: CompareOutcome) -> dict[str, Any]:
    """``title`` and ``runs``: what ``harness report`` reads from this summary for its page
    (the ``load`` section of its schema), so the comparison shows beside the gate's checks."""
    config = outcome.config
    plan = outcome.environment.get("plan")
    title = (
        f"baseline vs target{f', plan {plan}' if plan else ''}: "
        f"{config.run.users} instances, {config.run.duration} s each"
    )
    runs = [
        {
            "name": name,
            "requests": run.requests,
            "failures": run.failures,
            "rps": run.requests_per_s,
            "p50_ms": run.p50_ms,
            "p95_ms": run.p95_ms,
            "p99_ms": run.p99_ms,
            # Locust has no percentile before the first response of a run: no point there
            "timeline": [
                {"t_s": p.second, "rps": p.requests_per_s, "p95_ms": p.p95_ms}
                for p in run.history
                if p.p95_ms is not None
            ],
        }
        for name, run in outcome.runs.items()
    ]
    return {"title": title, "runs": runs}


def _change(cut: float) -> str:
    return f"{'reduced' if cut >= 0 else 'increased'} by {abs(cut):.0%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _describe_run(name: str, run: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in run["errors_by_kind"].items() if n) or "none"
    return (
        f"{name}, all rounds: {run['requests']} requests, {run['error_rate']:.1%} failed "
        f"(by kind: {kinds}), mean of the rounds' "
        f"p50 {run['p50_ms']:.0f} ms, p95 {run['p95_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms "
        f"(successful requests only: p95 {_ms(run['succeeded_p95_ms'])})"
    )


def connection_lines(report: dict[str, Any]) -> list[str]:
    """What a new connection paid on each path, and how many the servers opened."""
    lines = []
    how = report.get("environment", {}).get("connections")
    if how:
        lines.append(f"Connections: {how}.")
    counts = report.get("connections", {})
    opened = {path: ms for path, ms in counts.get("open_ms", {}).items() if ms is not None}
    if opened:
        lines.append(
            "Opening one connection took (median of 10, before any load): "
            + "; ".join(f"{path} {ms:.1f} ms" for path, ms in opened.items())
            + "."
        )
    rounds = counts.get("server_sessions", [])
    if rounds and all(v is not None for r in rounds for v in r.values()):
        totals = {side: sum(r[side] for r in rounds) for side in rounds[0]}
        lines.append(
            "Server connections the instances' load opened, all rounds: "
            + ", ".join(f"{side} {n:,}" for side, n in totals.items())
            + " (pg_stat_database.sessions)."
        )
    return lines


def closing_note(report: dict[str, Any]) -> str:
    p = report["parameters"]
    rounds = report.get("repeat", 1)
    lines = [
        f"At {p['users']} concurrent instances for {p['duration_s']} s each (seed {p['seed']}), "
        f"{rounds} round{'s' if rounds != 1 else ''} of baseline then target:",
        _describe_run("baseline", report["architectures"]["baseline"]),
        _describe_run("target", report["architectures"]["target"]),
    ]
    for name, spread in report.get("intervals", {}).items():
        lines.append(side(name, spread))
    lines.append("The target's pooling: " + "; ".join(report.get("pooling", [])) + ".")
    lines += connection_lines(report)
    lines += [f"{t['status'].upper()}: {t['reason']}" for t in report["targets"]]
    missed, total = len(report["missed"]), len(report["targets"])
    code = report.get("exit_code")
    lines.append(
        "The plan's targets are met."
        if report["met"]
        else f"The plan's targets are NOT met ({missed} of {total} not met"
        + (
            "; the rounds could not settle it: run more rounds or a longer duration"
            if code == 3
            else ""
        )
        + ")."
    )
    if any(report.get("cpu_ms_per_request", [])):  # the servers are this machine's own
        lines += placement_lines(report.get("cpu_placement"))
    lines += cpu_lines(report)
    lines += loop_lines(report)
    lines += pooler_lines(report)
    lines += latency_lines(report)
    lines += projection_lines(report.get("projection"))
    runs = list(report["architectures"].values())
    runs += [r for results in report.get("sweep", {}).get("results", {}).values() for r in results]
    for run in runs:
        if run["peak_users"] < run["users"]:
            lines.append(
                f"Note: the {run['architecture']} run at {run['users']} instances reached only "
                f"{run['peak_users']} (Locust could not start them faster): raise the spawn "
                "rate or the duration."
            )
    for capped in report["capacity"]["capped_by"]:
        lines.append(f"The plan's own numbers cap the target: {capped}.")
    if "sweep" in report:
        for name, pooling in report["sweep"].get("pooling", {}).items():
            lines.append(f"Sweep: the {name}: " + "; ".join(pooling) + ".")
        for name, point in report["sweep"]["break_points"].items():
            lines.append(
                f"Sweep: the {name} breaks at {point} instances."
                if point is not None
                else f"Sweep: the {name} held up to {max(report['sweep']['instances'])} instances."
            )
    if "reference" in report:
        pg = report["reference"]["pgbench"]
        for metric, key in (("errors", "error_reduction"), ("p95", "p95_reduction")):
            agree = pg["agreement"][metric]
            if not agree["comparable"]:
                lines.append(f"pgbench -C, {metric}: no reduction to compare (a zero baseline).")
                continue
            locust = report["reductions"]["pool_error_rate" if metric == "errors" else "p95"]
            lines.append(
                f"pgbench -C, {metric}: {_change(pg[key])}; Locust: {_change(locust)}: "
                f"{'same' if agree['same_direction'] else 'opposite'} direction, "
                f"{'within' if agree['within_10_points'] else 'not within'} 10 points "
                f"({agree['difference_points']} apart)."
            )
    return "\n".join(lines)


# -- HTML ------------------------------------------------------------------------------------
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
color: #222 }
table { border-collapse: collapse; margin: .6em 0 1.2em } td, th { padding: .25em .7em;
border-bottom: 1px solid #ddd; text-align: right }
th:first-child, td:first-child { text-align: left }
.miss { color: #b03a2e; font-weight: 600 } .met { color: #1e7b34; font-weight: 600 }
pre { background: #f6f6f6; padding: .8em; white-space: pre-wrap } svg { max-width: 100% }
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any], outcome: CompareOutcome) -> str:
    from harness.load.plots import over_time, sweep_curves

    archs = report["architectures"]
    summary = _table(
        [
            "",
            "requests",
            "failed",
            "error rate",
            "pool errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "p95 ms, successes",
            "req/s",
        ],
        [
            [
                name,
                str(r["requests"]),
                str(r["failures"]),
                f"{r['error_rate']:.2%}",
                str(r["pool_errors"]),
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['max_ms']:.1f}",
                _ms(r["succeeded_p95_ms"]),
                f"{r['requests_per_s']:.1f}",
            ]
            for name, r in archs.items()
        ],
    )
    kinds = _table(
        ["kind", *archs], [[k, *(str(archs[a]["errors_by_kind"][k]) for a in archs)] for k in KINDS]
    )
    targets = "".join(
        f"<li class='{'met' if t['met'] else 'miss'}'>{html.escape(t['status'])}: "
        f"{html.escape(t['reason'])}</li>"
        for t in report["targets"]
    )
    runs = list(outcome.runs.values())
    parts = [
        f"<h1>Baseline vs target: {report['parameters']['users']} instances, "
        f"{report['parameters']['duration_s']} s each</h1>",
        f"<pre>{html.escape(report['closing_note'])}</pre>",
        "<h2>Targets</h2>",
        f"<ul>{targets}</ul>",
        "<h2>Summary</h2>",
        summary,
        "<h2>Rounds</h2>",
        _table(
            [
                "round",
                "architecture",
                "requests",
                "error rate",
                "pool errors",
                "p95 ms",
                "p95 ms, successes",
            ],
            [
                [
                    str(entry["round"]),
                    name,
                    str(r["requests"]),
                    f"{r['error_rate']:.2%}",
                    str(r["pool_errors"]),
                    f"{r['p95_ms']:.1f}",
                    _ms(r["succeeded_p95_ms"]),
                ]
                for entry in report["rounds"]
                for name, r in entry["architectures"].items()
            ],
        ),
        *_projection_section(report.get("projection")),
        "<h2>PgBouncer's view of the target</h2>",
        _table(
            [
                "round",
                "console",
                "pool mode",
                "most waiting",
                "maxwait ms",
                "busy server conns",
                "avg wait ms",
                "avg xact ms",
                "avg query ms",
            ],
            [
                [
                    str(entry["round"]),
                    v["console"],
                    v["pool_mode"] or "?",
                    str(v["max_cl_waiting"]),
                    f"{v['max_maxwait_ms']:.0f}",
                    str(v["max_sv_active"]),
                    *(
                        f"{v['averages_ms'].get(k, 0):.2f}"
                        for k in ("avg_wait_time", "avg_xact_time", "avg_query_time")
                    ),
                ]
                for entry in report["rounds"]
                for v in entry.get("pgbouncer", [])
                if v["samples"]
            ],
        ),
        "<h2>Errors by kind</h2>",
        kinds,
        "<h2>Latency over time</h2>",
        over_time(runs, what="latency"),
        "<h2>Errors over time</h2>",
        over_time(runs, what="errors"),
        "<h2>Capacity by setting</h2>",
        _table(
            ["architecture", "setting", "value", "connections per instance", "instances admitted"],
            [
                [
                    x["architecture"],
                    x["setting"],
                    str(x["value"]),
                    str(x["per_instance"]),
                    str(x["instances"]),
                ]
                for x in report["capacity"]["limits"]
            ],
        ),
    ]
    if outcome.sweep:
        sweep = report["sweep"]
        parts += [
            "<h2>Sweep: where each architecture breaks</h2>",
            sweep_curves(
                outcome.sweep,
                break_error_rate=outcome.config.sweep.break_error_rate,
                break_p95_ms=outcome.config.sweep.break_p95_ms,
            ),
            _table(
                [
                    "instances",
                    *(f"{a} error rate" for a in outcome.sweep),
                    *(f"{a} p95 ms" for a in outcome.sweep),
                ],
                [
                    [str(n)]
                    + [
                        f"{r['error_rate']:.2%}"
                        for a in outcome.sweep
                        for r in sweep["results"][a]
                        if r["users"] == n
                    ]
                    + [
                        f"{r['p95_ms']:.0f}"
                        for a in outcome.sweep
                        for r in sweep["results"][a]
                        if r["users"] == n
                    ]
                    for n in sweep["instances"]
                ],
            ),
        ]
    if "reference" in report:
        pg = report["reference"]["pgbench"]
        parts += [
            "<h2>Cross-check: pgbench -C</h2>",
            _table(
                ["", "clients", "transactions", "aborted clients", "error rate", "tps", "p95 ms"],
                [
                    [
                        a,
                        str(pg[a]["clients"]),
                        str(pg[a]["transactions"]),
                        str(pg[a]["aborted_clients"]),
                        f"{pg[a]['error_rate']:.2%}",
                        f"{pg[a]['tps']:.0f}",
                        f"{pg[a]['p95_ms'] or 0:.1f}",
                    ]
                    for a in ("baseline", "target")
                ],
            ),
        ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>pgcutover load comparison"
        f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _projection_section(projection: dict[str, Any] | None) -> list[str]:
    if projection is None:
        return []
    return [
        "<h2>Projection: each node on a machine of its own (a model, not a measurement)</h2>",
        _table(
            [
                "",
                "p95 ms measured (shared cores)",
                "p95 ms, model on shared cores",
                "p95 ms, model on separate machines",
                "pool errors (as measured)",
            ],
            [
                [
                    name,
                    f"{s['measured_p95_ms']:.1f}",
                    _ms(s["shared_p95_ms"]),
                    _ms(s["separate_p95_ms"]),
                    f"{s['pool_error_rate']:.2%}",
                ]
                for name, s in projection["sides"].items()
            ],
        ),
    ]


def write_report(outcome: CompareOutcome, *, directory: Path) -> tuple[Path, Path]:
    """``summary.json`` and ``report.html`` next to Locust's CSVs; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report(outcome)
    summary = directory / "summary.json"
    summary.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    page = directory / "report.html"
    page.write_text(render_html(report, outcome))
    return summary, page
