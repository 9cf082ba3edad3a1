"""What the comparison would show with each node on a machine of its own: a projection.

On one machine the primary, the replica, the PgBouncers and Locust share the cores,
so each hop of a request also waits for a core, which separate machines would give
it. The model, a queueing model calibrated on the run it projects:

* a request costs the CPU its nodes spend on it (measured per node and round, from
  ``/proc``), plus, at each wake-up on its way (the client, the server, a PgBouncer
  twice: the query in, the answer out), a wait for a core;
* that wait is M/M/c's: Erlang C's chance that all ``c`` cores are busy, times
  ``hold / (c - a)``, where ``a`` is the cores the load keeps busy (rate times CPU per
  request) and ``hold`` how long a process keeps a core it has; where the nodes were
  pinned (:mod:`harness.load.pinning`), each waits among those on its own cores;
* the client's wait is not modelled but measured: where Locust's loop was watched
  (:mod:`harness.load.loopwait`), a request waits for it as the watch saw it, on
  this machine and on separate ones alike (the generator had its own cores);
* ``hold`` is the one number not measured: it is fitted to the baseline's rounds,
  taking an exponential time plus the loop's wait (without a watch, p95 = ln 20
  times the mean).

It is a model of a running fleet, a steady state: the start-up, in which every
instance cold-starts within seconds and PgBouncer opens its first server
connections, is a transient it has no term for. So it is fitted and checked on the
successful requests' p95 once every instance had started (where that was recorded;
the whole run's otherwise), and the start-up is measured apart
(:func:`harness.load.explain.startup_lines`); the CPU per request and the rate are
the whole run's. The model is checked where a measurement exists: from the target's
own CPU and rate it predicts the target's p95 on this machine, and the report gives
its error. Then every node gets a machine of its own with as many cores as this one,
at the rate measured, with no network delay (each network round trip would add its
time to both sides, one hop more to the target). Pool errors are refusals by connection limits,
which do not move with the machines: they are projected as measured.

The verdict stays the measured one; this is labelled a projection everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from harness.load.loopwait import LoopWait
from harness.load.results import reduction

__all__ = ["NODE_CLIENT", "Point", "erlang_c", "project", "projection_lines"]

#: the load generator's node name in ``cpu_ms_per_request``
NODE_CLIENT = "Locust"
POOLER_PREFIX = "PgBouncer"
#: p95 / mean of an exponential distribution
P95_PER_MEAN = math.log(20)
#: how close the shared-machine prediction must come to call the model validated
VALIDATED_WITHIN = 0.15


def erlang_c(cores: int, busy: float) -> float | None:
    """The chance an arrival finds all ``cores`` busy when the load keeps ``busy`` of them
    busy on average; None when the load needs every core or more (no steady state)."""
    if busy >= cores:
        return None
    below = sum(busy**k / math.factorial(k) for k in range(cores))
    full = busy**cores / math.factorial(cores) * cores / (cores - busy)
    return full / (below + full)


def _wait_per_hold(cores: int, busy: float) -> float | None:
    """M/M/c's mean wait for a core, in units of how long a process holds one."""
    chance = erlang_c(cores, busy)
    return None if chance is None else chance / (cores - busy)


@dataclass(frozen=True, kw_only=True)
class Point:
    """One side of one round: its successful requests' p95, its rate (every request),
    and the CPU ms each node spent per request."""

    p95_ms: float
    rate: float
    cpu_ms: dict[str, float]
    #: the cores each node was pinned to (None: every node on all of them)
    placement: dict[str, tuple[int, ...]] | None = None
    #: how long requests waited for the load generator's loop (None: not watched)
    loop: LoopWait | None = None

    @property
    def cpu_total_ms(self) -> float:
        return sum(self.cpu_ms.values())

    def visits(self) -> dict[str, float]:
        """Wake-ups per request at each node: the client once, the servers once between
        them and the PgBouncers twice between them, each shared by the CPU it spent (a
        read wakes the reader's PgBouncer and the replica, a write the writer's and the
        primary)."""
        poolers = {n: ms for n, ms in self.cpu_ms.items() if n.startswith(POOLER_PREFIX)}
        servers = {n: ms for n, ms in self.cpu_ms.items() if n not in poolers and n != NODE_CLIENT}
        out = {n: 1.0 for n in self.cpu_ms if n == NODE_CLIENT}
        for group, each in ((servers, 1.0), (poolers, 2.0)):
            total = sum(group.values())
            for name, ms in group.items():
                out[name] = each * (ms / total if total > 0 else 1 / len(group))
        return out

    def _waiting_visits(self) -> dict[str, float]:
        """The visits whose wait for a core the model computes: the client's is measured
        (its loop's lateness is its wait) where the loop was watched."""
        visits = self.visits()
        if self.loop is not None:
            visits[NODE_CLIENT] = 0.0
        return visits

    def p95_for(self, mean_ms: float) -> float:
        """The p95 of a time of this mean (exponential), plus the wait for the loop."""
        return self.loop.p95(mean_ms) if self.loop is not None else P95_PER_MEAN * mean_ms

    def mean_for_p95(self) -> float:
        """The mean that :meth:`p95_for` turns into the p95 measured."""
        if self.loop is not None:
            return self.loop.mean_for_p95(self.p95_ms)
        return self.p95_ms / P95_PER_MEAN

    def shared_wait_factor(self, cores: int) -> float | None:
        """Wake-ups times the M/M/c wait per unit of ``hold`` on this machine: each node
        waits among the nodes pinned to the same cores (unpinned: all of them, on all)."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for node in self.cpu_ms:
            where = self.placement.get(node) if self.placement else None
            groups.setdefault(where or tuple(range(cores)), []).append(node)
        visits, factor = self._waiting_visits(), 0.0
        for on, nodes in groups.items():
            busy = self.rate * sum(self.cpu_ms[n] for n in nodes) / 1000
            per_visit = _wait_per_hold(len(on), busy)
            if per_visit is None:
                return None
            factor += per_visit * sum(visits[n] for n in nodes)
        return factor

    def mean_ms(self, cores: int, hold_ms: float, *, separate: bool) -> float | None:
        """The model's mean latency: on one machine's cores, or each node on its own."""
        if not separate:
            factor = self.shared_wait_factor(cores)
            return None if factor is None else self.cpu_total_ms + factor * hold_ms
        total = 0.0
        visits = self._waiting_visits()
        for node, ms in self.cpu_ms.items():
            per_visit = _wait_per_hold(cores, self.rate * ms / 1000)
            if per_visit is None:
                return None
            total += ms + visits[node] * per_visit * hold_ms
        return total


#: what the model is fitted and checked on, by the key of each round's side
WINDOWS = {
    "started_p95_ms": "once every instance had started",
    "succeeded_p95_ms": "over the whole run",
}


def _window(report: dict[str, Any]) -> str:
    """The steady state's p95 where every round recorded it, else the whole run's."""
    runs = [run for entry in report["rounds"] for run in entry["architectures"].values()]
    return "started_p95_ms" if all(r.get("started_p95_ms") for r in runs) else "succeeded_p95_ms"


def _points(report: dict[str, Any], side: str, key: str) -> list[Point]:
    placed = (report.get("cpu_placement") or {}).get(side)
    placement = {n: tuple(c) for n, c in placed.items()} if placed else None
    out = []
    for entry, cpu in zip(report["rounds"], report.get("cpu_ms_per_request") or [], strict=False):
        run, spent = entry["architectures"].get(side), cpu.get(side)
        if not run or not spent:
            continue
        p95 = run[key] if run.get(key) is not None else run["p95_ms"]
        loop = run.get("loop_wait")
        out.append(
            Point(
                p95_ms=p95,
                rate=run["requests_per_s"],
                cpu_ms=dict(spent),
                placement=placement,
                loop=LoopWait.from_json(loop) if loop else None,
            )
        )
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True, kw_only=True)
class Side:
    measured_p95_ms: float
    #: the model's p95 with every node on this machine's cores (None: saturated)
    shared_p95_ms: float | None
    #: the model's p95 with every node on a machine of its own (None: saturated)
    separate_p95_ms: float | None
    pool_error_rate: float


def project(report: dict[str, Any]) -> dict[str, Any] | None:
    """The separate-machines projection of both targets, with the model's error on this
    machine; None (with no claim) when the nodes' CPU was not measured (servers that are
    not this machine's own)."""
    cores = int(report.get("cpus") or 0)
    key = _window(report)
    base, target = _points(report, "baseline", key), _points(report, "target", key)
    if cores < 1 or not base or not target:
        return None
    fits = []
    for p in base:
        factor = p.shared_wait_factor(cores)
        if factor is not None and factor > 0:
            fits.append(max(0.0, (p.mean_for_p95() - p.cpu_total_ms) / factor))
    if not fits:
        return None  # the baseline saturated the cores in every round: nothing to fit
    hold = _mean(fits)

    def p95(points: list[Point], *, separate: bool) -> float | None:
        means = [p.mean_ms(cores, hold, separate=separate) for p in points]
        if any(m is None for m in means):
            return None
        return _mean([p.p95_for(m) for p, m in zip(points, means, strict=True) if m is not None])

    architectures = report["architectures"]
    sides = {
        name: Side(
            measured_p95_ms=_mean([p.p95_ms for p in points]),
            shared_p95_ms=p95(points, separate=False),
            separate_p95_ms=p95(points, separate=True),
            pool_error_rate=architectures[name]["pool_error_rate"],
        )
        for name, points in (("baseline", base), ("target", target))
    }
    predicted, measured = sides["target"].shared_p95_ms, sides["target"].measured_p95_ms
    error = None if predicted is None or measured <= 0 else predicted / measured - 1
    # the same prediction against the whole run, start-up included: what the model leaves out
    whole = _mean([p.p95_ms for p in _points(report, "target", "succeeded_p95_ms")])
    whole_error = None if predicted is None or whole <= 0 else predicted / whole - 1
    wanted = report["config"]["targets"]
    b, t = sides["baseline"], sides["target"]
    p95_cut = (
        reduction(b.separate_p95_ms, t.separate_p95_ms)
        if b.separate_p95_ms is not None and t.separate_p95_ms is not None
        else None
    )
    errors_cut = reduction(b.pool_error_rate, t.pool_error_rate)
    return {
        "label": "projection: a queueing model calibrated on this run, not a measurement",
        "cores_per_machine": cores,
        "hold_ms": hold,
        "validation": {
            "predicted_target_p95_ms": predicted,
            "measured_target_p95_ms": measured,
            "error": error,
            "validated": error is not None and abs(error) <= VALIDATED_WITHIN,
            "window": WINDOWS[key],
            "whole_run_measured_p95_ms": whole,
            "whole_run_error": whole_error,
        },
        "sides": {name: asdict(s) for name, s in sides.items()},
        "reductions": {"p95": p95_cut, "pool_error_rate": errors_cut},
        "targets": {
            "p95": _status(p95_cut, wanted["p95_reduction"]),
            "pool_error_rate": _status(errors_cut, wanted["error_reduction"]),
        },
    }


def _status(cut: float | None, wanted: float) -> str:
    if cut is None:
        return "not measurable"
    return "met" if cut >= wanted else "missed"


def projection_lines(projection: dict[str, Any] | None) -> list[str]:
    """The projection in sentences, each saying it is one."""
    if projection is None:
        return []
    v, sides = projection["validation"], projection["sides"]
    if v["error"] is None:
        check = "the model saturates on the target's numbers: it could not be checked"
    else:
        check = (
            f"checked on this machine, it predicts the target's successful p95 "
            f"{v['window']} at "
            f"{v['predicted_target_p95_ms']:.3g} ms where {v['measured_target_p95_ms']:.3g} ms "
            f"was measured ({v['error']:+.0%}: "
            f"{'within' if v['validated'] else 'NOT within'} {VALIDATED_WITHIN:.0%})"
        )
        if v.get("whole_run_error") is not None and v["window"] != WINDOWS["succeeded_p95_ms"]:
            check += (
                f"; over the whole run, start-up included, {v['whole_run_measured_p95_ms']:.3g} "
                f"ms was measured ({v['whole_run_error']:+.0%}: the start-up is not modelled)"
            )
    lines = [
        f"PROJECTION for separate machines ({projection['cores_per_machine']} cores each, no "
        f"network delay; a model, not a measurement; the verdict above is the measured one): "
        f"a process holds a core {projection['hold_ms']:.2f} ms (fitted to the baseline); "
        + check
        + "."
    ]
    for name in ("baseline", "target"):
        s = sides[name]
        sep = s["separate_p95_ms"]
        lines.append(
            f"PROJECTION, {name}: p95 {s['measured_p95_ms']:.3g} ms measured on shared cores -> "
            + (f"{sep:.3g} ms on machines of its own" if sep is not None else "saturated")
            + f"; pool errors {s['pool_error_rate']:.1%} (connection limits: as measured)."
        )
    for metric, label in (("p95", "p95 latency"), ("pool_error_rate", "connection pool errors")):
        cut = projection["reductions"][metric]
        shown = "n/a" if cut is None else f"{cut:+.0%}"
        lines.append(
            f"PROJECTION, {label}: reduction {shown}: {projection['targets'][metric]} "
            "on separate machines (projected)."
        )
    return lines
