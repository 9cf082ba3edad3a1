"""The gate: migrate, verify, roll back, verify, migrate again — and a verdict.

Every check is reported as soon as it completes, and a failing step does not
end the run: the runner diagnoses each statement of the failed step and goes
on, and the remaining checks run on what the plan produced, so one report
names every defect of a plan.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint, fingerprint
from harness.cluster import Cluster, Endpoints, start_cluster
from harness.cluster.base import once
from harness.cluster.clone import clone_for
from harness.cluster.versions import running_versions
from harness.comparisons import fingerprint_of, replica_check, rollback_checks, roundtrip_check
from harness.connections import describe
from harness.databases import connect, create_database, drop_database, unique_name
from harness.dsn import redact, with_login
from harness.ended_sessions import SessionsEnded, ended_check, sessions_ended_after
from harness.invariants import (
    Check,
    OldSessions,
    check_data,
    check_dependencies,
    check_foreign_keys,
    check_grants,
    check_layout,
    check_roles_created,
    check_sequences,
    check_table_parts,
    default_queries,
    probe_privileges,
)
from harness.invariants.acting import Login, LoginFor
from harness.invariants.answers import check_same_answers
from harness.invariants.new_sessions import check_new_sessions_as_roles
from harness.invariants.not_run import LoginsTried, not_run_in_gate, not_run_in_verify
from harness.invariants.old_path import check_old_sessions_as_roles
from harness.invariants.prepared import PreparedStatements
from harness.invariants.roles import left_without_login
from harness.invariants.room import check_connection_room
from harness.invariants.session_settings import check_session_settings
from harness.invariants.stand_ins import check_compatibility_views
from harness.ledger import Accounting
from harness.legacy.capacity import check_gate_room
from harness.lint import lint_plan
from harness.phases import PhaseClock
from harness.plan import Plan
from harness.progress import Progress, quiet
from harness.report.schema import SCHEMA_VERSION
from harness.runner import Runner, StepOutcome, take_backup, verify_backup
from harness.runner.backup import worth_own_server
from harness.traffic import TrafficOptions, TrafficRun

__all__ = ["GateReport", "cluster_login", "run_gate", "verify_database"]

#: a server beside the cluster to prove the backup on (see Cluster.scratch_server)
Scratch = Callable[[], AbstractContextManager[str | None]]

Emit = Callable[[Check], None]
GATE_DATABASE_PREFIX = "pgcutover_gate"


@dataclass
class GateReport:
    plan: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    context: dict[str, object] = field(default_factory=dict)
    require_all: bool = False  # a check that could not run fails the gate (--require-all)

    @property
    def safe(self) -> bool:
        return all(c.passed and (c.ran or not self.require_all) for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.safe else 1

    def to_json(self) -> dict[str, object]:
        failed = [c.name for c in self.checks if c.verdict == "fail"]
        return {
            "schema_version": SCHEMA_VERSION,
            "plan": self.plan,
            "verdict": "safe" if self.safe else "unsafe",
            "failed": failed,
            "not_run": [c.name for c in self.checks if not c.ran],
            "require_all": self.require_all,
            "seconds": round(self.seconds, 2),
            **self.context,
            "checks": [c.to_json() for c in self.checks],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(json.dumps(self.to_json(), indent=2)) + "\n")


class _Collector:
    def __init__(self, report: GateReport, emit: Emit) -> None:
        self.report, self.emit = report, emit

    def add(self, check: Check) -> None:
        self.report.checks.append(check)
        self.emit(check)


def _steps_check(name: str, outcomes: list[StepOutcome]) -> Check:
    offenders = [str(e) for o in outcomes if not o.applied for e in o.errors]
    for o in outcomes:
        if o.salvaged:
            roles = (
                f", with the roles {', '.join(o.stand_ins)} created as stand-ins (the plan "
                "expects them and never creates them)"
                if o.stand_ins
                else ""
            )
            offenders.append(
                f"{o.step.label}: its statements that succeed were applied anyway{roles}, so "
                "the checks that follow see what the plan intends"
            )
    failed_steps = [o.step.label for o in outcomes if not o.applied]
    seconds = sum(o.seconds for o in outcomes)
    retried = sum(o.attempts - 1 for o in outcomes)
    return Check.of(
        name,
        offenders=offenders,
        ok=f"all {len(outcomes)} steps applied in {seconds:.2f} sec"
        + (f" ({retried} lock-timeout retries)" if retried else ""),
        failed=f"{len(failed_steps)} of {len(outcomes)} steps failed and were rolled back "
        f"({', '.join(failed_steps)}); every failing statement is listed",
    )


def verify_database(
    plan: Plan,
    endpoints: Endpoints,
    *,
    baseline: Fingerprint | None,
    wait_for_replica: Callable[[], None] | None,
    emit: Emit,
    report: GateReport,
    accounting: Accounting | None = None,
    login: LoginFor | None = None,
) -> Fingerprint:
    """The checks of a migrated database; those needing a baseline run only with one.

    ``accounting`` holds the baseline to the application's writes made meanwhile
    (see harness.ledger), and names the rows each step changed. ``login`` says how to log in as
    each of the plan's roles, for ``privileges.tried``; without it, roles are
    tried by ``SET ROLE``.
    """
    out = _Collector(report, emit)
    judged: set[tuple[str, str]] = set()  # the refusals privileges.tried fails
    with connect(endpoints.primary) as conn:
        after = fingerprint(conn)
        out.add(check_layout(plan.layout, after, conn))
        if baseline is not None:
            account = accounting or Accounting()
            data = check_data(plan.layout, *account.align(baseline, after), conn)
            out.add(account.judge(data, window="migrate"))
            if accounting is not None:  # the gate's: the ledger's copy answers as it was
                ledger = accounting.ledger
                copy = ledger.copy if ledger is not None else None
                out.add(check_same_answers(plan, baseline, after, copy=copy, primary=conn))
            out.add(check_table_parts(plan.layout, baseline, after, conn))
            out.add(check_sequences(plan.layout, baseline, after))
            out.add(check_compatibility_views(plan.layout, baseline, after, conn))
            out.add(check_connection_room(plan, baseline, after, conn))
            out.add(check_session_settings(plan, baseline, after))
        out.add(check_foreign_keys(conn))
        out.add(
            probe_privileges(
                conn,
                plan.privileges,
                login=(tried := LoginsTried(login)),
                must_log_in=_logins_kept_from(plan, baseline),
                before=baseline,
                judged=judged,
            )
        )
        if baseline is not None:
            out.add(check_grants(plan.layout, plan.privileges, baseline, after))
        out.add(
            check_dependencies(
                conn,
                plan.layout,
                before=baseline,
                compatibility_views=plan.compatibility_views,
            )
        )
    dsn = endpoints.primary
    out.add(check_new_sessions_as_roles(plan, after, harness_dsn=dsn, login=login, judged=judged))
    if baseline is not None:
        out.add(
            check_old_sessions_as_roles(
                plan, after, baseline, harness_dsn=dsn, login=login, judged=judged
            )
        )
    if wait_for_replica is not None:
        wait_for_replica()
        out.add(
            replica_check(
                "replica.matches_primary",
                after,
                endpoints,
                ok="after replay, the replica's fingerprint equals the primary's",
                failed="after replay, the replica differs from the primary",
            )
        )
    for skipped in not_run_in_verify(
        baseline=baseline is not None, replica=wait_for_replica is not None, logins=tried
    ):
        out.add(skipped)
    return after


def _logins_kept_from(plan: Plan, baseline: Fingerprint | None) -> list[str]:
    """The roles the application logs in as that the migration must leave able to.

    A role that could not log in before the migration (one a dump named and the
    harness stood in for, NOLOGIN) is not the plan's doing, so not its finding;
    one the plan's SQL visibly leaves NOLOGIN is ``roles.created``'s.
    """
    roles = plan.workload.roles if plan.workload is not None else ()
    before = baseline.roles if baseline is not None else {}
    stated = set(left_without_login(plan))
    return [r for r in roles if (r not in before or before[r].login) and r not in stated]


def _backup_check(
    endpoints: Endpoints, baseline: Fingerprint, backup_dir: Path, scratch: Scratch
) -> Check:
    backup = take_backup(endpoints.primary, directory=backup_dir, throwaway=True)
    with scratch() if worth_own_server(backup) else nullcontext(None) as on:
        offenders = verify_backup(endpoints.primary, backup, expected=baseline, on=on)
    return Check.of(
        "backup.restores",
        offenders=offenders,
        ok=f"the pg_dump backup ({backup.bytes:,} bytes, {backup.seconds:.2f} sec) "
        "restores to a database identical to the original"
        + ("" if on is None else ", on a server of its own"),
        failed="the backup does not restore to the same database",
    )


@contextmanager
def _traffic_running(run: TrafficRun, progress: Progress) -> Iterator[None]:
    """The ledger and the traffic run inside; the traffic always stops: on a failed
    check, an error or Ctrl-C."""
    if run.options is not None:
        progress(
            f"application traffic: {run.options.clients or run.workload.clients} clients, "
            f"{run.workload.baseline:.1f} sec of baseline before the first step"
        )
    try:
        run.start()
        yield
    finally:
        run.stop()


def gate_database(
    plan: Plan,
    endpoints: Endpoints,
    *,
    wait_for_replica: Callable[[], None] | None,
    emit: Emit,
    progress: Progress,
    report: GateReport,
    backup_dir: Path,
    traffic: TrafficOptions | None = None,
    existed_roles: Collection[str] | None = None,
    login: LoginFor | None = None,
    scratch: Scratch = lambda: nullcontext(None),
) -> None:
    """Migrate, verify, roll back, verify, migrate again, on a seeded database.

    With ``traffic``, the application's workload runs from before the first step
    to after the second migration, and its checks join the verdict. ``login``:
    how to log in as a role the traffic has no login of (see :func:`cluster_login`).
    """
    out = _Collector(report, emit)
    wait = wait_for_replica or (lambda: None)
    report.context.update(running_versions(endpoints))  # "postgresql", "pgbouncer"
    out.add(lint_plan(plan))
    # The roles on the server before the gate made any (None: read them now).
    existed = _roles(endpoints.primary) if existed_roles is None else existed_roles
    out.add(check_roles_created(plan, existed=existed))
    run = TrafficRun(plan, endpoints, traffic)
    with run:  # its ledger is dropped on the way out, whatever happens
        if run.on:
            progress("application traffic: logins for the plan's roles, each query tried once")
        run.prepare()
        baseline = fingerprint_of(endpoints.primary)
        progress("pg_dump backup, then a restore to prove it")
        out.add(_backup_check(endpoints, baseline, backup_dir, scratch))
        sessions = OldSessions(
            endpoints,
            default_queries(plan.layout.tables, plan.session_queries, catalog=baseline),
            wait_for_replica=wait,
            login=run.sessions_login,
        )
        prepared = PreparedStatements(
            plan, endpoints, wait_for_replica=wait, login=run.sessions_login, poolers=plan.pgbouncer
        )

        def after(label: str) -> None:
            with sessions_ended_after(label):
                run.after(label)
                caught_up = once(wait)  # both need the replica past this step: one wait
                # the probes' own sessions, side by side
                with run.between_steps(), ThreadPoolExecutor(max_workers=2) as pool:
                    for done in [
                        pool.submit(probes.after, label, wait_for_replica=caught_up)
                        for probes in (sessions, prepared)
                    ]:
                        done.result()

        try:
            with (
                _traffic_running(run, progress),
                Runner(plan, endpoints.primary, progress=progress, salvage=True) as runner,
            ):
                progress(f"migrating with plan {plan.name!r}")
                steps = runner.migrate(
                    keep_going=True,
                    after_step=lambda o: after(o.step.label),
                    before_step=lambda s: run.phase(s.label, step=True),
                )
                run.phase("checks after the migration")
                out.add(_steps_check("migrate.steps", steps))
                with run.checking():
                    migrated = verify_database(
                        plan,
                        endpoints,
                        baseline=baseline,
                        wait_for_replica=wait_for_replica,
                        emit=emit,
                        report=report,
                        accounting=run.accounting,
                        login=_traffic_login(run, login),
                    )
                progress("rolling back")
                steps = runner.rollback(
                    keep_going=True,
                    after_step=lambda o: after(o.step.label),
                    before_step=lambda s: run.phase(plan.down_for(s.number).label, step=True),
                )
                run.phase("checks after the rollback")
                out.add(_steps_check("rollback.steps", steps))
                out.add(sessions.check(phase="keep_working"))
                out.add(prepared.check())
                for check in rollback_checks(
                    run, plan, baseline, endpoints, wait_for_replica=wait_for_replica
                ):
                    out.add(check)
                progress("migrating again after the rollback")
                again = runner.migrate(
                    keep_going=True,
                    before_step=lambda s: run.phase(f"{s.label} (again)", step=True),
                )
                run.phase("after the second migration")
            run.drop_legacy_access()
            out.add(
                roundtrip_check(
                    run, again, migrated, plan=plan, baseline=baseline, dsn=endpoints.primary
                )
            )
        except SessionsEnded as exc:
            out.add(ended_check(exc))
            return
        finally:
            sessions.close()
            prepared.close()
        if run.on:
            wait()
            for check in run.checks(replica=endpoints.replica if wait_for_replica else None):
                out.add(check)
            report.context["traffic"] = run.summary()
        report.context["ledger"] = run.ledger_summary()
    for skipped in not_run_in_gate(endpoints, replica=wait_for_replica is not None, traffic=run.on):
        out.add(skipped)


def cluster_login(cluster: Cluster, endpoints: Endpoints) -> LoginFor | None:
    """Logins as any role, on a cluster whose servers trust the harness; None elsewhere.

    The harness's own servers trust loopback and its PgBouncers trust the users of
    their auth file, so a role that can log in does so without a password: through
    the PgBouncer writer, as the application would, and for the probes in a new
    session on the primary. On a server someone else runs the harness knows no
    one's password; only the logins it made itself serve.
    """
    if not cluster.owns_servers:
        return None

    def login(role: str) -> Login:
        cluster.allow_users([role])
        return _login(endpoints, lambda base: with_login(base, user=role, password=None))

    return login


def _login(endpoints: Endpoints, as_role: Callable[[str], str]) -> Login:
    """The probes' new session on the primary, and the application's way in beside it."""
    if endpoints.writer == endpoints.primary:
        return Login(as_role(endpoints.primary), "directly to the primary")
    return Login(
        as_role(endpoints.primary),
        "through the PgBouncer writer",
        pooled=as_role(endpoints.writer),
    )


def _traffic_login(run: TrafficRun, fallback: LoginFor | None) -> LoginFor | None:
    """The traffic's own logins first (they carry a password), then ``fallback``."""
    logins = run.logins
    if logins is None:
        return fallback

    def login(role: str) -> Login | None:
        if role in logins.passwords:
            password = logins.passwords[role]
            return _login(
                logins.endpoints, lambda base: with_login(base, user=role, password=password)
            )
        return fallback(role) if fallback is not None else None

    return login


def _roles(dsn: str) -> set[str]:
    with connect(dsn) as conn:
        return {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}


def _drop_roles_made_since(dsn: str, before: set[str], *, progress: Progress) -> None:
    """Roles are cluster-wide: on a server someone else runs, leave none of the gate's behind.

    Only roles that did not exist when the gate began: the plan's, created by its
    steps, and the harness's logins. Their only objects were in the gate's own
    database, dropped by now, so nothing else depends on them.
    """
    made = sorted(_roles(dsn) - before)
    with connect(dsn) as conn:
        for role in made:
            try:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            except psycopg.Error as exc:
                progress(f"could not drop role {role} that the gate created: {describe(exc)}")


def run_gate(
    plan: Plan,
    *,
    provider: str = "local",
    pg_bin: str | None = None,
    legacy: Path | None = None,
    scale: int = 1,
    backup_dir: Path | None = None,
    emit: Emit = quiet,
    progress: Progress = quiet,
    traffic_clients: int | None = None,
    traffic: bool = True,
    cluster_options: dict[str, str] | None = None,
    clone_from: str | None = None,
) -> GateReport:
    """Start a cluster, seed the legacy database, and put the plan through the gate.

    The gate's backup proves the plan's first step is covered; it is of a throwaway
    database, so unless ``backup_dir`` is given it goes where the cluster goes.
    ``clone_from``: start the primary from a copy of that server, which holds the database.
    """
    from harness.legacy import seed

    started = time.perf_counter()
    clock = PhaseClock()
    progress, emit = clock.wrap(progress), clock.wrap_emit(emit)
    clone = clone_for(
        clone_from, plan, provider=provider, pg_bin=pg_bin, legacy=legacy, progress=progress
    )
    if clone is None:  # a clone's room is checked against its source's size
        check_gate_room(provider=provider, scale=scale, legacy=legacy or plan.legacy)
    context = {"clone": clone.to_json()} if clone else {"scale": scale}
    report = GateReport(plan=plan.name, context={"provider": provider, **context})
    cluster: Cluster
    with (
        tempfile.TemporaryDirectory(prefix="pgcutover-backup-") as scratch,
        start_cluster(
            provider,
            pg_bin=pg_bin,
            progress=progress,
            image=(cluster_options or {}).get("image"),
            network=(cluster_options or {}).get("network"),
            pgbouncer_image=(cluster_options or {}).get("pgbouncer_image"),
            poolers=plan.pgbouncer,
            clone=clone,
        ) as cluster,
    ):
        # The gate works only in a database it creates, and drops only that one: on a
        # server someone else runs, a database of the same name may hold their data. A
        # plan whose SQL names its database gets a new database of that name, or a
        # refusal where one exists; any other plan gets a name no one else uses.
        name = clone.database if clone else plan.database or unique_name(GATE_DATABASE_PREFIX)
        roles_before = _roles(cluster.endpoints.primary)
        if clone is None:  # the copy holds the database already: nothing to create or load
            create_database(cluster.endpoints.primary, name)
        endpoints = cluster.endpoints.for_database(name)
        try:
            if clone is None:
                progress(f"seeding the legacy database (scale {scale})")
                seed(
                    endpoints.primary,
                    scale=scale,
                    legacy=legacy or plan.legacy,
                    progress=progress,
                    create_roles=True,
                )
            cluster.allow_users(plan.layout.roles)
            gate_database(
                plan,
                endpoints,
                wait_for_replica=cluster.wait_for_replica
                if cluster.has_streaming_replica
                else None,
                emit=emit,
                progress=progress,
                report=report,
                backup_dir=backup_dir or Path(scratch),
                # The roles seeding made for the dump existed before the plan ran.
                existed_roles=_roles(cluster.endpoints.primary),
                login=cluster_login(cluster, endpoints),
                scratch=cluster.scratch_server,
                traffic=TrafficOptions(
                    clients=traffic_clients,
                    allow_users=cluster.allow_users,
                    may_alter_roles=cluster.owns_servers,
                )
                if traffic
                else None,
            )
        finally:
            drop_database(cluster.endpoints.primary, name)
            if not cluster.owns_servers:
                _drop_roles_made_since(cluster.endpoints.primary, roles_before, progress=progress)
    report.context["phases"] = clock.finish()
    report.seconds = time.perf_counter() - started
    return report
