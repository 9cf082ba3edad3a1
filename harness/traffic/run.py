"""One run of the application's traffic through the gate: set up, run, judge.

The gate calls, in order: :meth:`TrafficRun.prepare` (logins, parameters, every
query tried once: a bad workload is exit 2 before any step), :meth:`start` (the
clients and the lock sampler, then the baseline), :meth:`phase` at each step and
stage, :meth:`stop` (always: on a failed step and on Ctrl-C too), and
:meth:`checks`. Without options (``--no-traffic``) every call does nothing, and
the gate reads the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness.catalog import Fingerprint
from harness.cluster import Endpoints
from harness.invariants.new_sessions import heaviest_reader
from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.workload import Workload, simple_workload
from harness.traffic.checks import (
    check_no_errors,
    check_old_connections,
    check_stall,
    check_writes_kept,
    latency_summary,
    mask_written,
)
from harness.traffic.clients import BEFORE, Timeline, Traffic, prepare_params
from harness.traffic.logins import Logins, provision_logins
from harness.traffic.sampler import LockSampler

__all__ = ["TrafficOptions", "TrafficRun", "workload_of"]

FAILURES_KEPT = 200  # in reports/gate.json; traffic.no_errors counts all of them


@dataclass(frozen=True)
class TrafficOptions:
    clients: int | None = None  # None: the workload's own number (default 16)
    #: the cluster's ``allow_users``: lets the workload's logins through its PgBouncers
    allow_users: Callable[[Iterable[str]], None] | None = None
    #: False on a server someone else runs: a role that exists there is theirs, and
    #: giving it a password of ours would lock out whoever logs in as it today
    may_alter_roles: bool = True


def workload_of(plan: Plan) -> Workload:
    """The plan's ``[workload]``, or the simple case made from its ``[sessions] queries``."""
    if plan.workload is not None:
        return plan.workload
    return simple_workload(list(plan.layout.tables), plan.session_queries)


class TrafficRun:
    def __init__(self, plan: Plan, endpoints: Endpoints, options: TrafficOptions | None) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.options = options
        self.workload = workload_of(plan)
        self.logins: Logins | None = None
        self.traffic: Traffic | None = None
        self.sampler: LockSampler | None = None

    @property
    def on(self) -> bool:
        return self.options is not None

    def prepare(self) -> None:
        if self.options is None:
            return
        roles = {role: self.workload.kinds_of(role) for role in self.workload.roles}
        self.logins = provision_logins(
            self.endpoints,
            roles,
            allow_users=self.options.allow_users,
            may_alter_roles=self.options.may_alter_roles,
        )
        params = prepare_params(self.endpoints.primary, self.workload)
        self.traffic = Traffic(self.workload, self.logins, params, clients=self.options.clients)
        self.traffic.check_queries()

    def start(self) -> None:
        if self.traffic is None:
            return
        dsns = [self.endpoints.primary]
        if self.endpoints.replica != self.endpoints.primary:
            dsns.append(self.endpoints.replica)
        self.sampler = LockSampler(dsns, self.traffic.timeline)
        self.traffic.start()
        self.sampler.start()
        self.traffic.wait(self.workload.baseline)

    def phase(self, label: str, *, step: bool = False) -> None:
        if self.traffic is not None:
            self.traffic.timeline.mark(label, step=step)

    def after(self, step: str) -> None:
        if self.traffic is not None:
            self.traffic.timeline.mark_after(step)

    @property
    def session_role(self) -> str | None:
        """The role the ``sessions.*`` checks log in as: the one that reads the most."""
        return heaviest_reader(self.workload)

    def session_login(self, path: str) -> str:
        """A DSN for ``path`` (primary, replica, writer, reader) as :attr:`session_role`."""
        assert self.logins is not None
        return self.logins.dsn(self.session_role, path=path)

    @property
    def new_session_dsn(self) -> str | None:
        """Where ``sessions.new_sessions_work`` logs in: as the application, or (None) as
        the harness."""
        return self.session_login("primary") if self.logins is not None else None

    @property
    def sessions_login(self) -> Callable[[str], str] | None:
        """How the ``sessions.*`` checks log in: as the application, or (None) as the harness."""
        return self.session_login if self.logins is not None else None

    def drop_legacy_access(self) -> None:
        if self.logins is not None:
            self.logins.drop_legacy_access()

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Around the checks of the migrated database: only the plan's own grants count
        (the roles' legacy access is off), and the writes wait, because
        ``privileges.tried`` puts sequences back where they were after its trial
        inserts, and an insert meanwhile would take a value that is handed out again."""
        if self.traffic is None or self.logins is None:
            yield
            return
        with self.traffic.writes_on_hold(), self.logins.without_legacy_access():
            yield

    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        if self.sampler is not None:
            self.sampler.stop()

    def mask(self, fp: Fingerprint) -> Fingerprint:
        """``fp`` modulo the tables the traffic wrote so far (see harness.traffic.checks)."""
        if self.traffic is None:
            return fp
        return mask_written(fp, self.traffic.written_tables())

    @property
    def wrote(self) -> bool:
        return bool(self.traffic and self.traffic.written_tables())

    def checks(self, *, replica: str | None) -> list[Check]:
        if self.traffic is None:
            return []
        requests = list(self.traffic.requests)
        timeline = self.traffic.timeline
        locks = self.sampler.stats if self.sampler else {}
        return [
            check_no_errors(requests, timeline),
            check_stall(requests, timeline, self.workload, locks),
            check_writes_kept(
                requests, self.workload, primary=self.endpoints.primary, replica=replica
            ),
            check_old_connections(requests, timeline),
        ]

    def summary(self) -> dict[str, object] | None:
        if self.traffic is None:
            return None
        requests = list(self.traffic.requests)
        locks = self.sampler.stats if self.sampler else {}
        return {
            "clients": self.traffic.clients,
            "requests": len(requests),
            "writes_acknowledged": sum(r.kind == "write" and r.ok for r in requests),
            "failed": sum(not r.ok for r in requests),
            "roles": list(self.workload.roles),
            "phases": (phases := latency_summary(requests, self.traffic.timeline, locks)),
            **report_timeline(self.traffic.timeline, phases),
            "failures": [
                {
                    "phase": self.traffic.timeline.phase_of(r.start, r.end),
                    "query": r.query,
                    "role": r.role,
                    "path": r.path,
                    "sqlstate": r.sqlstate,
                    "message": r.message,
                    "ms": round(r.seconds * 1000, 1),
                }
                for r in requests
                if not r.ok
            ][:FAILURES_KEPT],
        }


def _kind(label: str) -> str:
    for prefix, kind in (("up/", "migrate"), ("down/", "rollback"), (BEFORE, "baseline")):
        if label.startswith(prefix):
            return kind
    return "checks"


def report_timeline(timeline: Timeline, phases: list[dict[str, object]]) -> dict[str, object]:
    """The per-phase latencies in the report's timeline shape (harness.report.schema)."""
    first = {label: i for i, label in reversed(list(enumerate(timeline.labels)))}
    now = time.monotonic()
    steps = []
    for entry in phases:
        i = first[str(entry["phase"])]
        ends = timeline.times[i + 1] if i + 1 < len(timeline.times) else now
        steps.append(
            {
                "step": entry["phase"],
                "phase": _kind(str(entry["phase"])),
                "started_s": round(timeline.times[i] - timeline.times[0], 3),
                "seconds": round(ends - timeline.times[i], 3),
                "requests": entry["requests"],
                "errors": entry["failed"],
                "p50_ms": entry["p50_ms"],
                "p99_ms": entry["p99_ms"],
                "max_ms": entry["max_ms"],
            }
        )
    before = next((e for e in phases if e["phase"] == BEFORE), None)
    baseline = (
        {"baseline": {k: before[k] for k in ("p50_ms", "p99_ms", "max_ms")}} if before else {}
    )
    return {"steps": steps, **baseline}
