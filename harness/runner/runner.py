"""Applying a plan's steps to a database, one transaction per step, with a ledger.

Two modes. Strict (``harness migrate``): stop at the first failing step and
raise; the database is left as it was before that step. Keep going (the gate):
record the failure, find every other failing statement of that step in a
scratch transaction that is rolled back, and go on with the next steps, so one
run names every defect of a plan.

Either way a step waits for its locks only briefly per attempt and within a
total budget (see :mod:`harness.runner.locks`), its session names the step in
``application_name``, and the server ends it within a second if the runner
dies (``client_connection_check_interval``), releasing every lock it held.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import psycopg
from psycopg import sql

from harness.connections import Conn, connect_primary
from harness.dsn import redact
from harness.errors import InfrastructureError, LockContention, PlanError, StepFailed
from harness.plan import Plan, Step
from harness.plan.sqltext import Statement
from harness.progress import Progress, quiet
from harness.runner.backup import remove_leftovers
from harness.runner.ledger import AppliedStep, ensure_ledger, forget, read_ledger, record
from harness.runner.locks import (
    Blocker,
    BlockerWatch,
    backoff,
    claim_database,
    likely_blockers,
    parse_duration,
    step_application_name,
)
from harness.runner.script import ScriptFailed, run_script

__all__ = ["Runner", "StatementError", "StepOutcome"]

# How often the server checks, while a step's statement runs or waits for a lock,
# that the runner is still connected (PostgreSQL >= 14; Linux, via POLLRDHUP).
CONNECTION_CHECK_INTERVAL = "1s"


@dataclass(frozen=True)
class StatementError:
    """One statement of a step that the server refused, and why."""

    step: str
    line: int
    statement: str
    sqlstate: str | None
    message: str

    def __str__(self) -> str:
        code = f" [SQLSTATE {self.sqlstate}]" if self.sqlstate else ""
        return f"{self.step} line {self.line}: {self.message}{code} — in `{self.statement}`"


@dataclass
class StepOutcome:
    step: Step
    applied: bool
    seconds: float = 0.0
    attempts: int = 0
    errors: list[StatementError] = field(default_factory=list)
    # Salvage: the step failed, and its statements that succeed were applied anyway,
    # with these roles created because the plan expects them and never creates them.
    salvaged: bool = False
    stand_ins: list[str] = field(default_factory=list)


def _count(step: Step) -> str:
    n = len(step.statements)
    return f"{n} statement{'s' if n != 1 else ''}"


def _blocked_by(blockers: list[Blocker]) -> str:
    return "; blocked by " + ", ".join(str(b) for b in blockers) if blockers else ""


def _error(step: Step, statement: Statement, exc: psycopg.Error) -> StatementError:
    diag = exc.diag
    message = diag.message_primary or str(exc).strip()
    if diag.message_hint:
        message += f" (hint: {diag.message_hint})"
    return StatementError(step.label, statement.line, statement.summary, diag.sqlstate, message)


class Runner:
    """Applies and reverts one plan's steps on one database."""

    def __init__(
        self,
        plan: Plan,
        dsn: str,
        *,
        progress: Progress = quiet,
        sleep: Callable[[float], None] = time.sleep,
        salvage: bool = False,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.plan = plan
        self.salvage = salvage
        self.dsn = dsn
        self._progress = progress
        self._sleep = sleep
        self._jitter = jitter
        self._claimed = False
        self.conn: Conn = connect_primary(
            dsn,
            fix="migrations run on the primary: give the primary's DSN",
            application_name=step_application_name(plan=plan.name, label="runner"),
        )
        if self.conn.info.server_version >= 140000:  # the setting is new in PostgreSQL 14
            self.conn.execute(
                "SELECT set_config('client_connection_check_interval', %s, false)",
                (CONNECTION_CHECK_INTERVAL,),
            )

    def claim(self) -> None:
        """Become the only runner on this database until closed; drop a killed run's leftovers.

        Raises :class:`~harness.errors.RunInProgress` naming the session of the
        runner that got there first.
        """
        if self._claimed:
            return
        claim_database(self.conn, what=f"run of plan {self.plan.name!r}")
        self._claimed = True
        for name in remove_leftovers(self.dsn):
            self._progress(f"dropped {name}, a scratch copy left by an earlier run that was killed")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the ledger against the plan -------------------------------------------------
    def applied(self) -> list[AppliedStep]:
        return read_ledger(self.conn, self.plan.name)

    def _check_ledger(
        self, *, strict: bool, rolling_back: Literal[False, True, "accept-changed"] = False
    ) -> list[AppliedStep]:
        applied = self.applied()
        by_number = {s.number: s for s in self.plan.up}
        for row in applied:
            step = by_number.get(row.step)
            if step is None:
                raise PlanError(
                    f"the database has step {row.step} ({row.name}) of plan {self.plan.name!r} "
                    "applied, but the plan has no such step any more; roll it back with the "
                    "plan that applied it"
                )
            if step.checksum != row.checksum:
                changed = (
                    f"{step.label} changed after it was applied (applied sha256 "
                    f"{row.checksum[:12]}…, file now {step.checksum[:12]}…)"
                )
                down = self.plan.down_for(step.number).label
                if rolling_back == "accept-changed":
                    self._progress(f"{changed}; rolling it back with {down} as it is now")
                    continue
                if rolling_back:
                    raise PlanError(
                        f"{changed}: the database has the applied version, and the rollback "
                        f"would run {down} as it is now. If that undoes the applied version, "
                        "run the rollback again with --accept-changed; if not, put back the "
                        f"applied files first (git log -- {step.path.name})"
                    )
                raise PlanError(
                    f"{changed}: the database has the applied version. Either put that "
                    f"version back (git log -- {step.path.name}) and migrate, or roll back to "
                    f"before it with `harness rollback --plan {self.plan.directory} --dsn URL "
                    f"--accept-changed` (which runs {down} as it is now: check that it undoes "
                    "the applied version) and then migrate to apply the new one"
                )
        if strict:
            numbers = [s.number for s in self.plan.up]
            done = [r.step for r in applied]
            if done != numbers[: len(done)]:
                skipped = [n for n in numbers if n < max(done) and n not in done]
                raise PlanError(
                    f"the database skipped step(s) {', '.join(map(str, skipped))} of plan "
                    f"{self.plan.name!r}; roll back to before them, then migrate in order"
                )
        return applied

    def pending(self) -> list[Step]:
        done = {r.step for r in self._check_ledger(strict=True)}
        return [s for s in self.plan.up if s.number not in done]

    # -- running steps ---------------------------------------------------------------
    def _settings(self, step: Step, *, local: bool) -> None:
        """The step's timeouts and name: for its transaction, or (not ``local``) the session."""
        self.conn.execute(
            "SELECT set_config('lock_timeout', %s, %s),"
            " set_config('statement_timeout', %s, %s),"
            " set_config('application_name', %s, %s)",
            (
                self.plan.runner.lock_timeout,
                local,
                self.plan.runner.statement_timeout,
                local,
                step_application_name(plan=self.plan.name, label=step.label),
                local,
            ),
        )

    @contextmanager
    def _step_transaction(self, step: Step) -> Iterator[None]:
        with self.conn.transaction():
            self._settings(step, local=True)
            yield

    def _run(self, step: Step, *, ledger: Callable[[int], None]) -> StepOutcome:
        if step.outside_transaction is not None:
            return self._run_each(step, ledger=ledger)
        outcome = StepOutcome(step=step, applied=False)
        started = time.perf_counter()
        watch: BlockerWatch | None = None
        try:
            for attempt in range(self.plan.runner.lock_retries + 1):
                outcome.attempts = attempt + 1
                current: Statement | None = None
                try:
                    with self._step_transaction(step):
                        try:
                            run_script(self.conn, step.statements)
                        except ScriptFailed as refused:
                            current = refused.statement
                            raise refused.error from None
                        ledger(int((time.perf_counter() - started) * 1000))
                except psycopg.errors.LockNotAvailable as exc:
                    delay = backoff(attempt, jitter=self._jitter)
                    if self._may_retry(attempt, started=started, delay=delay):
                        # Watched from the first wait on, so the blocker is named at the end.
                        if watch is None:
                            watch = self._watch_blockers()
                        self._progress(
                            f"{step.label}: lock not available ({exc.diag.message_primary})"
                            f"{_blocked_by(watch.seen())}; retrying in {delay:.2f} sec"
                        )
                        self._sleep(delay)
                        continue
                    raise self._contention(step, outcome, started=started, watch=watch) from None
                except psycopg.Error as exc:
                    if current is None or (
                        isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
                    ):
                        raise InfrastructureError(
                            f"{step.label}: the runner could not record the step or lost its "
                            f"connection ({redact(str(exc)).strip()}); the step was rolled back"
                        ) from None
                    outcome.errors = [_error(step, current, exc)]
                    self._diagnose(outcome, ledger=ledger)
                else:
                    outcome.applied = True
                break
        finally:
            if watch is not None:
                watch.stop()
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _run_each(self, step: Step, *, ledger: Callable[[int], None]) -> StepOutcome:
        """A step PostgreSQL will not run as one transaction: each statement commits alone.

        ``CREATE INDEX CONCURRENTLY`` and its kind refuse a transaction block, and a
        zero-downtime plan needs them. The step's settings hold for the session while
        it runs. A failure cannot be rolled back: the statements before it stay
        applied, so the step ends there (in salvage mode the rest are tried too), is
        not recorded, and its error says so. A lock timeout is not retried: a
        concurrent index build that times out part way leaves an invalid index behind.
        """
        outcome = StepOutcome(step=step, applied=False, attempts=1)
        started = time.perf_counter()
        self._settings(step, local=False)
        done = 0
        try:
            for statement in step.statements:
                try:
                    self.conn.execute(statement.text, prepare=False)
                    done += 1
                except psycopg.Error as exc:
                    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
                        raise InfrastructureError(
                            f"{step.label}: lost the connection at line {statement.line} "
                            f"({redact(str(exc)).strip()}); the {done} statements before it "
                            "were applied, each on its own (the step runs outside a "
                            f"transaction: {step.outside_transaction})"
                        ) from None
                    error = _error(step, statement, exc)
                    kept = (
                        f" (outside a transaction, for {step.outside_transaction}: the {done} "
                        "statement(s) before it stay applied)"
                    )
                    outcome.errors.append(replace(error, message=error.message + kept))
                    if not self.salvage:
                        break
        finally:
            self.conn.execute("RESET lock_timeout; RESET statement_timeout; RESET application_name")
        if not outcome.errors or self.salvage:
            ledger(int((time.perf_counter() - started) * 1000))
        outcome.applied = not outcome.errors
        outcome.salvaged = bool(outcome.errors) and self.salvage
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _may_retry(self, attempt: int, *, started: float, delay: float) -> bool:
        """Another attempt fits: within the retries, and the wait plus a whole attempt
        within the budget."""
        settings = self.plan.runner
        if attempt >= settings.lock_retries:
            return False
        spent = time.perf_counter() - started
        per_attempt = parse_duration(settings.lock_timeout)
        return spent + delay + per_attempt <= parse_duration(settings.lock_budget)

    def _watch_blockers(self) -> BlockerWatch:
        per_attempt = parse_duration(self.plan.runner.lock_timeout)
        pid = self.conn.info.backend_pid
        return BlockerWatch(self.dsn, pid=pid, interval=max(0.01, per_attempt / 5)).start()

    def _contention(
        self, step: Step, outcome: StepOutcome, *, started: float, watch: BlockerWatch | None
    ) -> LockContention:
        blockers = watch.seen() if watch is not None else []
        if not blockers:
            try:
                blockers = likely_blockers(self.conn)
            except psycopg.Error:
                blockers = []
        spent = time.perf_counter() - started
        settings = self.plan.runner
        named = (
            "\n".join(f"  blocked by {b}" for b in blockers)
            or "  (the blocking session ended before it could be named)"
        )
        return LockContention(
            f"{step.label}: could not get its locks in {outcome.attempts} attempts of at most "
            f"{settings.lock_timeout} each over {spent:.1f} sec (lock_budget "
            f"{settings.lock_budget}); the step was rolled back and nothing of it changed. "
            "Other sessions held the locks it needs:\n"
            f"{named}\n"
            "This is contention, not a defect of the plan: run again when those sessions "
            "have finished (end them, or pick a quieter time), or raise [runner] lock_budget",
            step=step.label,
            attempts=outcome.attempts,
            blockers=[str(b) for b in blockers],
        )

    def _statement_pass(
        self,
        step: Step,
        *,
        stand_in_roles: Sequence[str] = (),
        commit: bool = False,
        ledger: Callable[[int], None] | None = None,
    ) -> list[StatementError]:
        """Run each statement of ``step`` under its own savepoint; every one that fails.

        Each statement is tried after the ones before it, so its error is the one it
        would meet in the step. Rolled back unless ``commit``.
        """
        errors: list[StatementError] = []
        try:
            with self.conn.transaction(force_rollback=not commit), self._step_transaction(step):
                for role in stand_in_roles:
                    self.conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
                for statement in step.statements:
                    try:
                        with self.conn.transaction():
                            self.conn.execute(statement.text, prepare=False)
                    except psycopg.Error as exc:
                        errors.append(_error(step, statement, exc))
                if ledger is not None:
                    ledger(0)
        except psycopg.Error as exc:
            self._progress(f"{step.label}: the statement-by-statement pass failed: {exc}")
        return errors

    def _missing_roles(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT r FROM unnest(%s::text[]) r WHERE r NOT IN (SELECT rolname FROM pg_roles)",
            (list(self.plan.layout.roles),),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _diagnose(self, outcome: StepOutcome, *, ledger: Callable[[int], None]) -> None:
        """Name every failing statement of a failed step; in salvage mode, apply the rest.

        A first pass shows what the step meets on this database. Where roles the plan
        expects are missing, a second pass stands them in, so that the statements that
        failed only for lack of a role are tried for their other defects too. Salvage
        commits that second pass (and records the step), so the remaining checks see
        what the plan intends rather than stopping at the first broken step.
        """
        step = outcome.step
        errors = self._statement_pass(step)
        stand_ins = self._missing_roles()
        if stand_ins or self.salvage:
            seen = {(e.line, e.message) for e in errors}
            second = self._statement_pass(
                step,
                stand_in_roles=stand_ins,
                commit=self.salvage,
                ledger=ledger if self.salvage else None,
            )
            prefix = (
                f"(with the plan's roles {', '.join(stand_ins)} stood in) " if stand_ins else ""
            )
            for e in second:
                if (e.line, e.message) not in seen:
                    errors.append(replace(e, message=prefix + e.message))
            if self.salvage:
                outcome.salvaged = True
                outcome.stand_ins = stand_ins
        outcome.errors = sorted(errors, key=lambda e: (e.line, e.message))

    def apply(self, step: Step) -> StepOutcome:
        """Apply one up step; it must come after every step the ledger lists."""
        self.claim()
        ensure_ledger(self.conn)
        done = [r.step for r in self._check_ledger(strict=False)]
        if done and step.number <= max(done):
            state = "is already applied" if step.number in done else "comes before applied ones"
            raise PlanError(
                f"{step.label} {state} (applied: {', '.join(map(str, done))}); "
                "steps apply in order, each once"
            )
        return self._apply(step)

    def _apply(self, step: Step) -> StepOutcome:
        self._progress(f"applying {step.label} ({_count(step)})")
        outcome = self._run(
            step,
            ledger=lambda ms: record(
                self.conn,
                plan=self.plan.name,
                step=step.number,
                name=step.name,
                checksum=step.checksum,
                duration_ms=ms,
            ),
        )
        self._report(outcome)
        return outcome

    def revert(self, step: Step, *, accept_changed: bool = False) -> StepOutcome:
        """Roll back one step; it must be the newest the ledger lists.

        ``accept_changed``: roll back even where an applied up file changed since,
        with the down files as they are now (the way out of a changed step).
        """
        self.claim()
        mode: Literal[True, "accept-changed"] = "accept-changed" if accept_changed else True
        done = [r.step for r in self._check_ledger(strict=False, rolling_back=mode)]
        if not done or step.number != max(done):
            newest = f"the newest applied is {max(done)}" if done else "none is applied"
            raise PlanError(
                f"cannot roll back {step.label}: {newest}; steps roll back newest first"
            )
        return self._revert(step)

    def _revert(self, step: Step) -> StepOutcome:
        down = self.plan.down_for(step.number)
        self._progress(f"applying {down.label} ({_count(down)})")
        outcome = self._run(
            down, ledger=lambda _ms: forget(self.conn, plan=self.plan.name, step=step.number)
        )
        self._report(outcome)
        return outcome

    def _report(self, outcome: StepOutcome) -> None:
        if outcome.applied:
            self._progress(f"{outcome.step.label}: done in {outcome.seconds:.2f} sec")
        else:
            for err in outcome.errors:
                self._progress(f"FAILED {err}")

    # -- whole runs ------------------------------------------------------------------
    def migrate(
        self,
        *,
        keep_going: bool = False,
        dry_run: bool = False,
        after_step: Callable[[StepOutcome], None] | None = None,
        before_step: Callable[[Step], None] | None = None,
    ) -> list[StepOutcome]:
        done = {r.step for r in self._check_ledger(strict=not keep_going)}
        todo = [s for s in self.plan.up if s.number not in done]
        if dry_run:
            return [StepOutcome(step=s, applied=False) for s in todo]
        self.claim()
        ensure_ledger(self.conn)
        # The ledger was checked once above; each step need not read it again.
        return self._each(
            todo, self._apply, keep_going=keep_going, after_step=after_step, before_step=before_step
        )

    def rollback(
        self,
        *,
        keep_going: bool = False,
        dry_run: bool = False,
        after_step: Callable[[StepOutcome], None] | None = None,
        accept_changed: bool = False,
        before_step: Callable[[Step], None] | None = None,
    ) -> list[StepOutcome]:
        mode: Literal[True, "accept-changed"] = "accept-changed" if accept_changed else True
        done = {r.step for r in self._check_ledger(strict=False, rolling_back=mode)}
        todo = [s for s in reversed(self.plan.up) if s.number in done]
        if dry_run:
            return [StepOutcome(step=self.plan.down_for(s.number), applied=False) for s in todo]
        self.claim()
        return self._each(
            todo,
            self._revert,
            keep_going=keep_going,
            after_step=after_step,
            before_step=before_step,
        )

    def _each(
        self,
        steps: list[Step],
        run: Callable[[Step], StepOutcome],
        *,
        keep_going: bool,
        after_step: Callable[[StepOutcome], None] | None,
        before_step: Callable[[Step], None] | None = None,
    ) -> list[StepOutcome]:
        """``before_step`` is told the up step about to be applied or rolled back."""
        outcomes = []
        for step in steps:
            if before_step is not None:
                before_step(step)
            outcome = run(step)
            outcomes.append(outcome)
            if after_step is not None:
                after_step(outcome)
            if not outcome.applied and not keep_going:
                raise StepFailed(
                    f"{outcome.step.label} failed; the database is as it was before this step:\n"
                    + "\n".join(f"  {e}" for e in outcome.errors),
                    step=outcome.step.label,
                    sqlstate=outcome.errors[0].sqlstate if outcome.errors else None,
                )
        return outcomes
