"""The closing note's sentences about spread and cause: each side over the rounds,
PgBouncer's own view of the target, and, when the latency target is not met, what the
measurements say dominates the target's latency on this machine.
"""

from __future__ import annotations

from typing import Any

from harness.load.confidence import judge

__all__ = [
    "cold_start_lines",
    "cpu_lines",
    "latency_lines",
    "loop_lines",
    "pooler_lines",
    "side",
    "startup_lines",
]


def side(name: str, spread: dict[str, Any]) -> str:
    parts = []
    for key, label, percent in (
        ("error_rate", "error rate", True),
        ("succeeded_p95_ms", "successful requests' p95", False),
        ("p95_ms", "all requests' p95", False),
        ("started_p95_ms", "successful requests' p95 once every instance had started", False),
    ):
        value = spread.get(key)
        if value is not None:
            parts.append(f"{label} {_spread(value, percent=percent)}")
    return f"{name} over the rounds: " + "; ".join(parts)


def _spread(value: dict[str, Any], *, percent: bool) -> str:
    def show(x: float) -> str:
        return f"{x:.1%}" if percent else f"{x:.3g} ms"

    if value["low"] is None:
        return show(value["mean"])
    return f"{show(value['mean'])} ({show(value['low'])} to {show(value['high'])})"


def pooler_lines(report: dict[str, Any]) -> list[str]:
    """PgBouncer's own view of the target: did clients queue for a server connection?"""
    lines = []
    for entry in report["rounds"]:
        for view in entry.get("pgbouncer", []):
            if view["error"] or not view["samples"]:
                continue
            avg = view["averages_ms"]
            lines.append(
                f"PgBouncer {view['console']}, round {entry['round']}: at most "
                f"{view['max_cl_waiting']} clients waiting (maxwait {view['max_maxwait_ms']:.0f} "
                f"ms), {view['max_sv_active']} server connections busy at once; averages: wait "
                f"{avg.get('avg_wait_time', 0):.2f} ms, transaction "
                f"{avg.get('avg_xact_time', 0):.2f} ms, query {avg.get('avg_query_time', 0):.2f} ms"
            )
    return lines


def latency_lines(report: dict[str, Any]) -> list[str]:
    """When the latency target is not met: what the measurements say dominates it.

    PgBouncer times the part of a transaction it sees (queued for a server
    connection, on the server); the rest of a request's time is outside it (the
    client, the extra hop, CPU scheduling); the load average says how many
    processes wanted the cores meanwhile.
    """
    latency = next((t for t in report["targets"] if "latency" in t["metric"]), None)
    if latency is None or latency["met"]:
        return []
    target = report["architectures"]["target"]
    views = [v for e in report["rounds"] for v in e.get("pgbouncer", []) if v["samples"]]
    lines = startup_lines(report, wanted=report["config"]["targets"]["p95_reduction"])
    lines += cold_start_lines(report)
    if views:

        def mean(key: str) -> float:
            return float(sum(v["averages_ms"].get(key, 0.0) for v in views)) / len(views)

        wait, xact, query = mean("avg_wait_time"), mean("avg_xact_time"), mean("avg_query_time")
        p50 = target["succeeded_p50_ms"] or target["p50_ms"]
        lines.append(
            f"What the target's latency is made of (PgBouncer's averages over both poolers and "
            f"the rounds): {wait:.2f} ms queued for a server connection, {xact:.2f} ms per "
            f"transaction on the server of which {query:.2f} ms in queries; the target's "
            f"median successful request took {p50:.2f} ms, so about "
            f"{max(0.0, p50 - wait - xact):.2f} ms of it was outside PgBouncer's pool and "
            "the server (the client, the extra hop, waiting for a core)."
        )
    busy = [x for e in report["rounds"] for x in e.get("load_average", {}).values()]
    cpus = report.get("cpus") or 0
    if busy and cpus:
        lines.append(
            f"The machine's 1-minute load average at the end of the runs was "
            f"{min(busy):.1f} to {max(busy):.1f} on {cpus} cores: the primary, the replica, "
            "both PgBouncers and Locust (and any other job) shared them, so a hop through a "
            "pooler costs a wait for a core that separate machines would not."
        )
    for name in ("baseline", "target"):
        used = [e.get("locust_cpu", {}).get(name) for e in report["rounds"]]
        known = [u for u in used if u is not None]
        if known:
            lines.append(
                f"Locust used {min(known):.2f} to {max(known):.2f} cores during the {name}'s "
                "runs (one process serves every instance on at most one core: near 1.0, the "
                "load generator itself was saturated and requests waited for it)."
            )
    return lines


def startup_lines(report: dict[str, Any], *, wanted: float) -> list[str]:
    """The latency reduction with the fleet's start-up left out, beside the verdict's.

    The verdict counts the whole run: the ramp in which every instance cold-starts
    at once and PgBouncer opens its first server connections is part of what the
    plan's users get. Judged again from the moment the last instance started, the
    difference says how much of the target's p95 its start-up is.
    """
    started = [
        [entry["architectures"][name].get("started_p95_ms") for name in ("baseline", "target")]
        for entry in report["rounds"]
        if "target" in entry["architectures"]
    ]
    pairs = [(b, t) for b, t in started if b is not None and t is not None]
    if not pairs or len(pairs) != len(started):
        return []
    judged = judge(
        metric="successful requests' p95 once every instance had started",
        baseline=[b for b, _ in pairs],
        target=[t for _, t in pairs],
        wanted=wanted,
        unit=" ms",
    )
    return [
        f"The start-up's share of the target's p95 (not the verdict, which counts the whole "
        f"run): {judged.reason} ({judged.status} with the start-up left out)."
    ]


def cold_start_lines(report: dict[str, Any]) -> list[str]:
    """What a new instance's first request paid on each side: its connections opened."""
    parts = []
    for name in ("baseline", "target"):
        run = report["architectures"].get(name, {})
        if run.get("cold_p95_ms") is None:
            continue
        succeeded = run["requests"] - run["failures"]
        parts.append(
            f"{name} {run['cold_p50_ms']:.3g} ms at p50 and {run['cold_p95_ms']:.3g} ms at "
            f"p95 over {run['cold_starts']:,} cold starts "
            f"({run['cold_starts'] / max(1, succeeded):.1%} of its successful requests)"
        )
    if not parts:
        return []
    return [
        "A new instance's first request, which opens its connections (counted over all "
        "rounds, p50 and p95 the rounds' mean): " + "; ".join(parts) + "."
    ]


def cpu_lines(report: dict[str, Any]) -> list[str]:
    """What shared this machine's cores: each node's CPU per request, mean of the rounds."""
    rounds = [r for r in report.get("cpu_ms_per_request", []) if r]
    if not rounds:
        return []
    parts = []
    for name in ("baseline", "target"):
        nodes: dict[str, list[float]] = {}
        for entry in rounds:
            for node, ms in entry.get(name, {}).items():
                nodes.setdefault(node, []).append(ms)
        if nodes:
            each = ", ".join(f"{node} {sum(v) / len(v):.2f} ms" for node, v in nodes.items())
            parts.append(f"{name}: {each}")
    cpus = report.get("cpus") or "?"
    where = (
        "on the cores placed above"
        if report.get("cpu_placement")
        else f"every node on this machine's {cpus} cores"
    )
    return [f"CPU per request, mean of the rounds, {where}: " + "; ".join(parts) + "."]


def loop_lines(report: dict[str, Any]) -> list[str]:
    """How late the load generator's own event loop ran on each side.

    Every instance a Locust process runs shares its one loop: while one computes (a
    TLS handshake, SCRAM's key derivation at a cold start), the others' requests wait
    and are measured waiting, which instances on machines of their own would not.
    """
    parts = []
    for name in ("baseline", "target"):
        run = report["architectures"].get(name, {})
        if run.get("loop_late_p95_ms") is None:
            continue
        parts.append(
            f"{name} {run['loop_late_p95_ms']:.2f} ms at p95, {run['loop_late_max_ms']:.0f} ms "
            f"at longest, late {run['loop_late_share']:.1%} of the time"
        )
    if not parts:
        return []
    return [
        "Locust's event loop (every instance of a process shares it; a request measured "
        "while it ran late waited for it, as one on a machine of its own would not) woke "
        "late by: " + "; ".join(parts) + "."
    ]
