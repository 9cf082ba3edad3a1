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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import psycopg

from harness.cluster import Endpoints
from harness.cluster.pooling import DEFAULT_POOLERS
from harness.connections import connect, replay_target, wait_for_replay
from harness.errors import InfrastructureError
from harness.invariants.new_sessions import heaviest_reader
from harness.invariants.not_run import not_run_without_writes, path_labels
from harness.invariants.result import Check
from harness.ledger import Accounting, ChangeLedger, LedgerUnavailable, check_writes_accounted
from harness.plan import Plan
from harness.plan.default_workload import workload_of
from harness.runner.locks import step_application_name
from harness.traffic.checks import (
    Backend,
    check_no_errors,
    check_old_connections,
    check_writes_kept,
    latency_summary,
)
from harness.traffic.clients import BEFORE, Request, Timeline, Traffic, prepare_params
from harness.traffic.conflicts import check_recovery_conflicts
from harness.traffic.logins import Logins, provision_logins
from harness.traffic.sampler import LockSampler
from harness.traffic.stall import check_stall
from harness.traffic.timeouts import cancelled_unblocked

__all__ = ["TrafficOptions", "TrafficRun", "workload_of"]

FAILURES_KEPT = 200  # in reports/gate.json; traffic.no_errors counts all of them
_IDLE = "SELECT pid, backend_start FROM pg_stat_activity WHERE state = 'idle'"
REPLAY_TIMEOUT = 600.0  # sec: a replica catching up with a freshly loaded large database


@dataclass(frozen=True)
class TrafficOptions:
    clients: int | None = None  # None: the workload's own number (default 16)
    baseline: float | None = None  # sec of traffic before the first step; None: the workload's
    #: the cluster's ``allow_users``: lets the workload's logins through its PgBouncers
    allow_users: Callable[[Iterable[str]], None] | None = None
    #: False on a server someone else runs: a role that exists there is theirs, and
    #: giving it a password of ours would lock out whoever logs in as it today
    may_alter_roles: bool = True


class TrafficRun:
    def __init__(self, plan: Plan, endpoints: Endpoints, options: TrafficOptions | None) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.options = options
        self.workload = workload_of(plan)
        self.logins: Logins | None = None
        self.traffic: Traffic | None = None
        self.sampler: LockSampler | None = None
        self.ledger: ChangeLedger | None = None
        self.accounting = Accounting()
        #: the server connections idle as the first step ended (traffic.old_connections_used)
        self.idle_after_first_step: set[Backend] | None = None

    @property
    def migration(self) -> str:
        """The runner's application_name up to the step: how the sampler knows its locks."""
        return step_application_name(plan=self.plan.name, label="")

    @property
    def on(self) -> bool:
        return self.options is not None

    def prepare(self) -> None:
        self._open_ledger()
        if self.options is None:
            return
        roles = {role: self.workload.kinds_of(role) for role in self.workload.roles}
        self.logins = provision_logins(
            self.endpoints,
            roles,
            allow_users=self.options.allow_users,
            may_alter_roles=self.options.may_alter_roles,
        )
        self._replica_has_logins()
        params = prepare_params(self.endpoints.primary, self.workload)
        self.traffic = Traffic(
            self.workload, self.logins, params, clients=self.options.clients, pools=self._pools()
        )
        self.traffic.check_queries()

    def _pools(self) -> dict[str, int]:
        """Each pooled path's pool for one role, as the plan configures its PgBouncers."""
        poolers = self.plan.pgbouncer or DEFAULT_POOLERS
        pools = {}
        for settings, path, server in (
            (poolers.writer, "writer", self.endpoints.primary),
            (poolers.reader, "reader", self.endpoints.replica),
        ):
            if getattr(self.endpoints, path) != server:
                pools[path] = settings.default_pool_size
        return pools

    def _replica_has_logins(self) -> None:
        """The reader logs in on the replica: the logins just made must be replayed there
        first. A large database's load (and the ledger's copy of it) can keep a replica
        busy for a while, and a login it has not replayed is refused as unknown."""
        if self.endpoints.replica == self.endpoints.primary:
            return
        with connect(self.endpoints.primary) as primary:
            target = replay_target(primary)
        with connect(self.endpoints.replica) as replica:
            if wait_for_replay(replica, target, timeout=REPLAY_TIMEOUT) is None:
                raise InfrastructureError(
                    f"the replica did not replay the traffic's logins within {REPLAY_TIMEOUT:.0f} "
                    "sec; it is too far behind the primary to serve the application's reads"
                )

    def start(self) -> None:
        """The ledger's slot, then the traffic: both see every step from the first."""
        if self.ledger is not None:
            try:
                self.ledger.start()
            except LedgerUnavailable as exc:
                self._without_ledger(exc)
        if self.traffic is None:
            return
        dsns = [self.endpoints.primary]
        if self.endpoints.replica != self.endpoints.primary:
            dsns.append(self.endpoints.replica)
        self.sampler = LockSampler(dsns, self.traffic.timeline, migration=self.migration)
        self.traffic.start()
        self.sampler.start()
        assert self.options is not None  # traffic is on
        baseline = self.options.baseline
        self.traffic.warm_up(self.workload.baseline if baseline is None else baseline)

    def _idle_backends(self) -> set[Backend]:
        """The server connections open and idle on the primary and the replica now.

        What cannot be read (a server that went away, a login that may not see others'
        sessions) is left out: the check is then as strict as without it.
        """
        found: set[Backend] = set()
        for dsn in dict.fromkeys([self.endpoints.primary, self.endpoints.replica]):
            try:
                with connect(dsn) as conn:
                    rows = conn.execute(_IDLE).fetchall()
            except psycopg.Error:
                continue
            found |= {(int(pid), started) for pid, started in rows if started is not None}
        return found

    def _open_ledger(self) -> None:
        """The ledger's copy is the baseline; without it, say what goes uncompared."""
        # The copy takes the application's writes and the changes the plan declares,
        # and shows which columns an undeclared change touched: with traffic or without.
        ledger = ChangeLedger(self.endpoints.primary, declared=self.plan.data_changes)
        try:
            ledger.open()
        except LedgerUnavailable as exc:
            self._without_ledger(exc)
            return
        self.ledger = ledger
        self.accounting = Accounting(ledger)

    def _without_ledger(self, why: LedgerUnavailable) -> None:
        # Without traffic the comparisons are exact anyway; with it, the tables
        # the application writes are left out, and named with this reason.
        self.ledger = None
        self.accounting = Accounting(why=str(why))

    def __enter__(self) -> TrafficRun:
        return self

    def __exit__(self, *exc: object) -> None:
        """Drop the ledger's slot and copy, after the traffic's checks, or on any error."""
        if self.ledger is not None:
            self.ledger.close()

    def phase(self, label: str, *, step: bool = False) -> None:
        if self.traffic is not None:
            self.traffic.timeline.mark(label, step=step)
        if self.ledger is not None:
            self.ledger.mark(label, step=step)

    def after(self, step: str) -> None:
        if self.traffic is not None:
            self.traffic.timeline.mark_after(step)
            if self.idle_after_first_step is None:
                self.idle_after_first_step = self._idle_backends()
        if self.ledger is not None:
            self.ledger.mark(f"after {step}", step=False)

    @contextmanager
    def between_steps(self) -> Iterator[None]:
        """Around the harness's probes after a step: the traffic waits (at scale 100 they
        took 16 s beside it and 2 s alone, and no step runs meanwhile for it to exercise);
        then, before the next step, every query of the workload is sent once on the
        state the step left, so each state between two steps meets each query every run
        rather than as the draw falls inside whatever time the probes took."""
        if self.traffic is None:
            yield
            return
        with self.traffic.on_hold():
            yield
            self.traffic.sweep()

    @contextmanager
    def settled(self) -> Iterator[None]:
        """Inside, the application's traffic waits and the ledger has every write before.

        A comparison read inside sees the database at one point of the WAL, the point
        the ledger's copy is brought to: so the two are comparable, row for row.
        """
        with self.traffic.on_hold() if self.traffic is not None else nullcontext():
            self._catch_up()
            yield

    def _catch_up(self) -> None:
        if self.ledger is not None:
            self.ledger.catch_up(self.ledger.settle(), traffic=self._xids)
        elif self.traffic is not None:
            self.accounting.leave_out(self.traffic.written_tables())
        self.accounting.drawn = self._drawn()

    def _xids(self) -> set[int]:
        if self.traffic is None:
            return set()
        return {r.xid for r in list(self.traffic.requests) if r.xid is not None}

    def _drawn(self) -> set[str]:
        """Tables (bare names) the application wrote or may have drawn a sequence for."""
        if self.traffic is None:
            return set()
        requests = list(self.traffic.requests)
        tables = {t for r in requests if r.ok for t in r.written}
        if self.ledger is not None:
            tables |= {t.rsplit(".", 1)[-1] for t in self.ledger.changed_tables()}
        if any(r.kind == "write" and not r.ok for r in requests):
            # A failed insert may have drawn from a sequence before it failed.
            text = " ".join(s for q in self.workload.queries if q.kind == "write" for s in q.sql)
            tables |= {t.split(".")[-1] for t in self.plan.layout.tables if
                       t.split(".")[-1] in text}  # fmt: skip
        return tables

    @property
    def session_role(self) -> str | None:
        """The role the ``sessions.*`` checks log in as: the one that reads the most."""
        return heaviest_reader(self.plan.workload)

    def session_login(self, path: str) -> str:
        """A DSN for ``path`` (primary, replica, writer, reader) as :attr:`session_role`."""
        assert self.logins is not None
        return self.logins.dsn(self.session_role, path=path)

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
        (the roles' legacy access is off), and the traffic waits, because
        ``privileges.tried`` puts sequences back where they were after its trial
        inserts, and an insert meanwhile would take a value that is handed out again.

        First, every read of the workload is sent once on the plan's grants alone, from
        the connections opened before the migration: a grant the plan forgot on a view
        its old sessions read through is an error only they meet.
        """
        if self.traffic is None or self.logins is None:
            with self.settled():
                yield
            return
        with self.logins.without_legacy_access(), self.settled():
            self.traffic.sweep(("read",))
            yield

    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        if self.sampler is not None:
            self.sampler.stop()

    def checks(self, *, replica: str | None) -> list[Check]:
        if self.traffic is None:
            return []
        requests = list(self.traffic.requests)
        timeline = self.traffic.timeline
        waits = self.sampler.all_waits() if self.sampler else []
        again = cancelled_unblocked(requests, waits, self.traffic.again_alone)
        return [
            check_no_errors(requests, timeline, labels=path_labels(self.endpoints), again=again),
            check_stall(
                waits,
                requests,
                limits=self.workload.stall,
                held=self.sampler.held if self.sampler else None,
                gaps=self.sampler.gaps if self.sampler else (),
            ),
            self._writes_kept(requests, replica=replica)
            if any(q.kind == "write" for q in self.workload.queries)
            else not_run_without_writes(declared=self.workload.declared),
            check_old_connections(
                requests,
                timeline,
                labels=path_labels(self.endpoints),
                idle_after_first_step=self.idle_after_first_step or (),
            ),
            check_recovery_conflicts(requests, timeline),
        ]

    def _writes_kept(self, requests: list[Request], *, replica: str | None) -> Check:
        """From the ledger when there is one: every write; else by the queries' verify."""
        if self.ledger is None or self.ledger.copy is None:
            return check_writes_kept(
                requests, self.workload, primary=self.endpoints.primary, replica=replica
            )
        with self.settled():
            pass
        writes = [r for r in requests if r.kind == "write"]
        targets = [("primary", self.endpoints.primary)] + (
            [("replica", replica)] if replica else []
        )
        return check_writes_accounted(
            self.ledger,
            [(r.xid, r.query) for r in writes if r.ok],
            [(r.xid, r.query) for r in writes if not r.ok],
            targets=targets,
        )

    def ledger_summary(self) -> dict[str, object]:
        """What the ledger decoded, and each step's WAL and replica lag; or why none ran."""
        if self.ledger is None:
            return {"unavailable": self.accounting.why}
        return self.ledger.summary()

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
            "reads_rerouted": sum(r.rerouted for r in requests),
            "recovery_conflicts": sum(bool(r.conflict) for r in requests),
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
