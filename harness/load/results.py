"""What one Locust run measured, read back from Locust's own CSV files.

The summary is built from Locust's CSVs and nothing else, so the report's
counts are Locust's counts: requests and failures from ``*_stats.csv``'s
Aggregated row, failures by kind from ``*_failures.csv`` (whose error text the
Locust user writes as ``kind: ExceptionType``), and the time series from
``*_stats_history.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureError
from harness.load.confidence import Interval, judge
from harness.load.loopwait import LoopWait
from harness.routing import ErrorKind

__all__ = [
    "KINDS",
    "POOL_KINDS",
    "HistoryPoint",
    "RunResult",
    "Verdict",
    "pool_rounds",
    "read_run",
    "reduction",
    "verdict",
]

#: every kind a report lists, zero or not; "other" is a failure no user labelled
KINDS = (*(k.value for k in ErrorKind), "other")
#: the plan's "connection pool errors": every refusal, not a query that was wrong
POOL_KINDS = tuple(k for k in KINDS if k not in {ErrorKind.QUERY_ERROR.value, "other"})


@dataclass(frozen=True, kw_only=True)
class HistoryPoint:
    second: float
    users: int
    requests_per_s: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, kw_only=True)
class RunResult:
    architecture: str
    users: int
    requests: int
    failures: int
    errors_by_kind: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests_per_s: float
    #: percentiles of successful requests only (from the Locust user's own record)
    succeeded_p50_ms: float | None = None
    succeeded_p95_ms: float | None = None
    succeeded_p99_ms: float | None = None
    #: successful requests' p95 once every instance had started: the fleet running, the
    #: start-up (each instance's first logins, PgBouncer's first server connections) behind
    started_p95_ms: float | None = None
    #: each new instance's first request, in which it opened its connections: how many
    #: succeeded, and their p50 and p95
    cold_starts: int | None = None
    cold_p50_ms: float | None = None
    cold_p95_ms: float | None = None
    #: how late Locust's event loop woke (every instance of a process shares it, so a
    #: request measured meanwhile waited for it): the 95th percentile of its wake-ups,
    #: the longest, and the share of the run it was late
    loop_late_p95_ms: float | None = None
    loop_late_max_ms: float | None = None
    loop_late_share: float | None = None
    #: the loop watch's whole record, for the projection's model
    loop_wait: LoopWait | None = None
    by_operation: dict[str, dict[str, float]] = field(default_factory=dict)
    history: tuple[HistoryPoint, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def peak_users(self) -> int:
        """The most instances Locust had running at once (fewer than asked: a slow ramp)."""
        return max((p.users for p in self.history), default=0)

    @property
    def pool_errors(self) -> int:
        return sum(self.errors_by_kind[k] for k in POOL_KINDS)

    @property
    def pool_error_rate(self) -> float:
        return self.pool_errors / self.requests if self.requests else 0.0

    def to_json(self, *, history: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["error_rate"] = self.error_rate
        out["peak_users"] = self.peak_users
        out["pool_errors"] = self.pool_errors
        out["pool_error_rate"] = self.pool_error_rate
        if history:
            out["history"] = [asdict(p) for p in self.history]
        else:
            del out["history"]
        return out


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # Locust writes "N/A" before the first response
    return value if math.isfinite(value) else None


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise InfrastructureError(
            f"Locust wrote no {path.name} in {path.parent}: the run did not complete; "
            "its output above says why"
        ) from None


def kind_of(error: str) -> str:
    """The kind in a failure's text (``pool_timeout: PoolTimeout``), else ``other``."""
    head = error.split(":", 1)[0].strip().strip("'\"")
    return head if head in KINDS else "other"


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``; None when there are none."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))]


def _recorded(prefix: Path, what: str) -> list[float]:
    """The times the locustfile's processes wrote for ``what``, sorted."""
    times: list[float] = []
    for path in prefix.parent.glob(f"{prefix.name}_{what}.*.json"):
        times.extend(float(v) for v in json.loads(path.read_text()))
    return sorted(times)


#: the period of the locustfile's loop watch, in ms
LOOP_TICK_MS = 10.0


def _loop_late(
    prefix: Path,
) -> tuple[float | None, float | None, float | None, LoopWait | None]:
    """The loop's lateness: its 95th percentile, its longest, the share of time late, and
    the whole record."""
    late = _recorded(prefix, "loop_late_ms")
    if not late:
        return None, None, None, None
    wait = LoopWait.from_samples(late, tick_ms=LOOP_TICK_MS)
    # each wake-up covers its tick and its lateness
    share = sum(late) / (sum(late) + LOOP_TICK_MS * len(late))
    return percentile(late, 0.95), late[-1], share, wait


def read_run(prefix: Path, *, architecture: str, users: int) -> RunResult:
    """The summary of the Locust run whose ``--csv`` prefix was ``prefix``."""
    stats = _rows(prefix.with_name(prefix.name + "_stats.csv"))
    total = next((r for r in stats if r["Name"] == "Aggregated"), None)
    if total is None:
        raise InfrastructureError(f"{prefix}_stats.csv has no Aggregated row: not a Locust CSV")
    errors = dict.fromkeys(KINDS, 0)
    for row in _rows(prefix.with_name(prefix.name + "_failures.csv")):
        errors[kind_of(row["Error"])] += int(row["Occurrences"])
    by_operation = {
        f"{r['Type']} {r['Name']}": {
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "p95_ms": _float(r["95%"]) or 0.0,
        }
        for r in stats
        if r["Name"] != "Aggregated"
    }
    history: list[HistoryPoint] = []
    start: float | None = None
    for row in _rows(prefix.with_name(prefix.name + "_stats_history.csv")):
        if row["Name"] != "Aggregated":
            continue
        stamp = float(row["Timestamp"])
        start = stamp if start is None else start
        history.append(
            HistoryPoint(
                second=stamp - start,
                users=int(row["User Count"]),
                requests_per_s=_float(row["Requests/s"]) or 0.0,
                failures_per_s=_float(row["Failures/s"]) or 0.0,
                p50_ms=_float(row["50%"]),
                p95_ms=_float(row["95%"]),
            )
        )
    succeeded = _recorded(prefix, "succeeded_ms")
    cold = _recorded(prefix, "succeeded_ms_cold")
    late_p95, late_max, late_share, loop_wait = _loop_late(prefix)
    return RunResult(
        architecture=architecture,
        users=users,
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        errors_by_kind=errors,
        p50_ms=_float(total["50%"]) or 0.0,
        p95_ms=_float(total["95%"]) or 0.0,
        p99_ms=_float(total["99%"]) or 0.0,
        max_ms=_float(total["Max Response Time"]) or 0.0,
        requests_per_s=_float(total["Requests/s"]) or 0.0,
        succeeded_p50_ms=percentile(succeeded, 0.50),
        succeeded_p95_ms=percentile(succeeded, 0.95),
        succeeded_p99_ms=percentile(succeeded, 0.99),
        started_p95_ms=percentile(_recorded(prefix, "succeeded_ms_started"), 0.95),
        cold_starts=len(cold) if succeeded else None,
        cold_p50_ms=percentile(cold, 0.50),
        cold_p95_ms=percentile(cold, 0.95),
        by_operation=by_operation,
        history=tuple(history),
        loop_late_p95_ms=late_p95,
        loop_late_max_ms=late_max,
        loop_late_share=late_share,
        loop_wait=loop_wait,
    )


def reduction(before: float, after: float) -> float | None:
    """How much lower ``after`` is, as a fraction of ``before``; None when before is 0."""
    if before <= 0:
        return None
    return (before - after) / before


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def pool_rounds(results: list[RunResult]) -> RunResult:
    """One architecture's rounds as one result: counts summed, percentiles averaged.

    Counts add up exactly (each is Locust's own); a percentile of several runs
    cannot be rebuilt from their percentiles, so it is the mean of the rounds'
    (the report gives each round's and the interval beside it). The history is
    the last round's, for the over-time plots.
    """
    if not results:
        raise ValueError("pool_rounds needs at least one round")
    if len(results) == 1:
        return results[0]
    first = results[0]
    waits = [r.loop_wait for r in results if r.loop_wait is not None]
    colds = [r.cold_starts for r in results if r.cold_starts is not None]
    errors = {k: sum(r.errors_by_kind[k] for r in results) for k in first.errors_by_kind}
    operations: dict[str, dict[str, float]] = {}
    for r in results:
        for name, op in r.by_operation.items():
            into = operations.setdefault(name, {"requests": 0, "failures": 0, "p95_ms": 0.0})
            into["requests"] += op["requests"]
            into["failures"] += op["failures"]
            into["p95_ms"] += op["p95_ms"] / len(results)
    return RunResult(
        architecture=first.architecture,
        users=first.users,
        requests=sum(r.requests for r in results),
        failures=sum(r.failures for r in results),
        errors_by_kind=errors,
        p50_ms=sum(r.p50_ms for r in results) / len(results),
        p95_ms=sum(r.p95_ms for r in results) / len(results),
        p99_ms=sum(r.p99_ms for r in results) / len(results),
        max_ms=max(r.max_ms for r in results),
        requests_per_s=sum(r.requests_per_s for r in results) / len(results),
        succeeded_p50_ms=_mean([r.succeeded_p50_ms for r in results]),
        succeeded_p95_ms=_mean([r.succeeded_p95_ms for r in results]),
        succeeded_p99_ms=_mean([r.succeeded_p99_ms for r in results]),
        started_p95_ms=_mean([r.started_p95_ms for r in results]),
        cold_starts=sum(colds) if colds else None,
        cold_p50_ms=_mean([r.cold_p50_ms for r in results]),
        cold_p95_ms=_mean([r.cold_p95_ms for r in results]),
        loop_late_p95_ms=_mean([r.loop_late_p95_ms for r in results]),
        loop_late_max_ms=max(
            (r.loop_late_max_ms for r in results if r.loop_late_max_ms is not None), default=None
        ),
        loop_late_share=_mean([r.loop_late_share for r in results]),
        loop_wait=LoopWait.merged(waits) if waits else None,
        by_operation=operations,
        history=results[-1].history,
    )


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One success metric over the rounds: its reduction's interval and the status it earns.

    ``status`` is one of :data:`harness.load.confidence.STATUSES`; only "met" meets.
    """

    metric: str
    baseline: float
    target: float
    reduction: float | None
    interval: Interval | None
    wanted: float
    status: str
    reason: str

    @property
    def met(self) -> bool:
        return self.status == "met"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["met"] = self.met
        out["interval"] = None if self.interval is None else self.interval.to_json()
        return out


def verdict(
    *,
    metric: str,
    baseline: list[float],
    target: list[float],
    wanted: float,
    unit: str,
    note: str = "",
) -> Verdict:
    """The verdict on one metric from each round's baseline and target value."""
    judged = judge(metric=metric, baseline=baseline, target=target, wanted=wanted, unit=unit)
    return Verdict(
        metric=metric,
        baseline=sum(baseline) / len(baseline),
        target=sum(target) / len(target),
        reduction=None if judged.reduction is None else judged.reduction.mean,
        interval=judged.reduction,
        wanted=wanted,
        status=judged.status,
        reason=judged.reason + note,
    )
