"""The runner on a real copy of the legacy database: ledger, dry run, failures, locks, backup.

``harness migrate`` runs against production. Each promise it makes is shown
here on the local cluster: a step is applied once and remembered with its
checksum; a changed file is refused; a failing step leaves the database
exactly as it was before that step (by fingerprint, not by trust); a held lock
is waited out a bounded number of times; a standby or an unreachable server
is refused without printing a password; the backup taken first restores.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from harness.catalog import Fingerprint, diff, fingerprint
from harness.cluster import Cluster
from harness.dsn import redact
from harness.errors import (
    InfrastructureError,
    LockContention,
    PlanError,
    StepFailed,
    UsageError,
)
from harness.plan import load_plan
from harness.runner import Runner, StepOutcome, take_backup, verify_backup
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

PLANS = Path(__file__).resolve().parent.parent / "plans"
KCT = PLANS / "kct"
# Bounded waits for the lock scenarios: long enough for a loaded CI machine,
# short enough that a broken hand-off fails the test instead of hanging it.
HANDOFF_TIMEOUT = 30.0

Conn = psycopg.Connection[tuple[object, ...]]


def _copy_plan(tmp_path: Path, *, runner: str | None = None) -> Path:
    """A private copy of plans/kct to edit; ``runner`` replaces its [runner] table."""
    target = tmp_path / "plan"
    shutil.copytree(KCT, target)
    if runner is not None:
        toml = (target / "plan.toml").read_text()
        start = toml.index("[runner]")
        end = toml.index("[layout]")
        (target / "plan.toml").write_text(toml[:start] + runner + "\n" + toml[end:])
    return target


def _fingerprint(dsn: str) -> Fingerprint:
    with connect(dsn) as conn:
        return fingerprint(conn)


def _differences(before: Fingerprint, dsn: str) -> list[str]:
    """What changed, but the roles the plan keeps on purpose (roles are cluster-wide: an
    earlier scenario's migration may have made them, or not)."""
    kept = load_plan(KCT).keeps_roles
    return [
        str(d)
        for d in diff(before, _fingerprint(dsn))
        if not (d.kind == "role" and d.object in kept)
    ]


def _ledger_exists(dsn: str) -> bool:
    with connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass('pgcutover.ledger') IS NOT NULL").fetchone()
    return row == (True,)


def _ledger(dsn: str, plan: str) -> list[tuple[object, ...]]:
    """(step, name, checksum) rows, or [] where no ledger exists yet."""
    if not _ledger_exists(dsn):
        return []
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT step, name, checksum FROM pgcutover.ledger WHERE plan = %s ORDER BY step",
            (plan,),
        ).fetchall()


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if needle in text)


class _StopHere(Exception):
    """Raised from ``after_step`` to end a migrate run after a chosen step has committed."""


def _migrate_through(runner: Runner, number: int) -> None:
    """Apply the plan's steps up to and including ``number``, through the public migrate().

    Not ``Runner.apply``: on a database without a ledger it fails silently (see
    test_apply_on_a_database_without_ledger).
    """

    def stop(outcome: StepOutcome) -> None:
        assert outcome.applied, f"{outcome.step.label} failed: {outcome.errors}"
        if outcome.step.number == number:
            raise _StopHere

    with pytest.raises(_StopHere):
        runner.migrate(after_step=stop)


def _append(path: Path, sql: str) -> int:
    """Append ``sql`` on a line of its own; the 1-based line it starts on."""
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + sql + "\n")
    return text.count("\n") + 1


# -- ledger ---------------------------------------------------------------------------
def test_migrate_records_each_step_with_its_sha256_and_runs_once(
    legacy_database: LegacyDatabase,
) -> None:
    """The ledger is what makes a second ``harness migrate`` in a deploy script harmless."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(KCT)
    with Runner(plan, dsn) as runner:
        outcomes = runner.migrate()
    assert [(o.step.label, o.applied, o.attempts) for o in outcomes] == [
        (s.label, True, 1) for s in plan.up
    ]
    assert _ledger(dsn, "kct") == [
        (s.number, s.name, hashlib.sha256(s.path.read_bytes()).hexdigest()) for s in plan.up
    ]
    migrated = _fingerprint(dsn)
    assert migrated.table_schema("products") == ["tenant_shared"]
    assert migrated.table_schema("customers") == ["tenant_kct"]

    with Runner(plan, dsn) as runner:
        assert runner.pending() == []
        assert runner.migrate() == []
    assert _differences(migrated, dsn) == []
    assert len(_ledger(dsn, "kct")) == len(plan.up)


def test_rollback_restores_the_database_and_empties_the_ledger(
    legacy_database: LegacyDatabase,
) -> None:
    """The corrected plan's rollback is exact; the ledger forgets each step it reverts."""
    dsn = legacy_database.endpoints.primary
    before = _fingerprint(dsn)
    plan = load_plan(KCT)
    with Runner(plan, dsn) as runner:
        runner.migrate()
        outcomes = runner.rollback()
    assert [o.step.label for o in outcomes] == [s.label for s in reversed(plan.down)]
    assert all(o.applied for o in outcomes)
    assert _ledger(dsn, "kct") == []
    assert _differences(before, dsn) == []


def test_apply_on_a_database_without_ledger(legacy_database: LegacyDatabase) -> None:
    """``Runner.apply`` is public: on a fresh database it must apply and record the step."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(KCT)
    with Runner(plan, dsn) as runner:
        outcome = runner.apply(plan.up[0])
    assert (outcome.applied, outcome.errors) == (True, [])
    assert _ledger(dsn, "kct") == [(1, plan.up[0].name, plan.up[0].checksum)]


def test_single_steps_apply_in_order_and_roll_back_newest_first(
    legacy_database: LegacyDatabase,
) -> None:
    """``apply`` and ``revert`` are public too: they must not skip, repeat or reorder steps."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(KCT)
    before = _fingerprint(dsn)
    with Runner(plan, dsn) as runner:
        with pytest.raises(PlanError, match="none is applied"):
            runner.revert(plan.up[0])
        assert runner.apply(plan.up[0]).applied
        assert runner.apply(plan.up[1]).applied
        with pytest.raises(PlanError, match="is already applied"):
            runner.apply(plan.up[0])
        with pytest.raises(PlanError, match="the newest applied is 2"):
            runner.revert(plan.up[0])
        assert runner.revert(plan.up[1]).applied
        assert runner.revert(plan.up[0]).applied
    assert _ledger(dsn, "kct") == []
    assert _differences(before, dsn) == []


# -- dry run --------------------------------------------------------------------------
def test_dry_run_changes_nothing_and_lists_the_pending_steps(
    legacy_database: LegacyDatabase,
) -> None:
    """``--dry-run`` is used against production to review a deploy: it must touch nothing."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(KCT)
    before = _fingerprint(dsn)
    with Runner(plan, dsn) as runner:
        outcomes = runner.migrate(dry_run=True)
        assert [(o.step.label, o.applied) for o in outcomes] == [(s.label, False) for s in plan.up]
        assert runner.rollback(dry_run=True) == []
    assert _differences(before, dsn) == []
    assert not _ledger_exists(dsn), "a dry run created the ledger"

    with Runner(plan, dsn) as runner:
        _migrate_through(runner, 1)
        after_first = _fingerprint(dsn)
        pending = runner.migrate(dry_run=True)
        reverts = runner.rollback(dry_run=True)
    assert [o.step.label for o in pending] == [s.label for s in plan.up[1:]]
    assert [o.step.label for o in reverts] == ["down/001_create_roles_and_schemas.sql"]
    assert _differences(after_first, dsn) == []
    assert _ledger(dsn, "kct") == [(1, plan.up[0].name, plan.up[0].checksum)]


# -- a changed step -------------------------------------------------------------------
def test_changed_applied_step_is_refused_by_migrate_and_rollback(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """What ran is not what the file says any more: refused, with a way out that works."""
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    with Runner(load_plan(directory), dsn) as runner:
        runner.migrate()
    migrated = _fingerprint(dsn)
    _append(directory / "up" / "002_move_tables.sql", "-- an innocent-looking edit")
    changed = load_plan(directory)

    with Runner(changed, dsn) as runner:
        with pytest.raises(PlanError) as on_migrate:
            runner.migrate()
        with pytest.raises(PlanError) as on_rollback:
            runner.rollback()
        with pytest.raises(PlanError):
            runner.migrate(dry_run=True)
    for caught in (on_migrate, on_rollback):
        message = str(caught.value)
        assert "up/002_move_tables.sql changed after it was applied" in message
        assert changed.up[1].checksum[:12] in message
        assert "--accept-changed" in message
    assert _differences(migrated, dsn) == []
    assert len(_ledger(dsn, "kct")) == len(changed.up)

    # The way out the message names: roll back with the down files as they are, then migrate.
    messages: list[str] = []
    with Runner(changed, dsn, progress=messages.append) as runner:
        runner.rollback(accept_changed=True)
        assert _ledger(dsn, "kct") == []
        runner.migrate()
    assert any("rolling it back with down/002_move_tables.sql" in m for m in messages)
    assert [row[2] for row in _ledger(dsn, "kct")] == [s.checksum for s in changed.up]


# -- a failing step -------------------------------------------------------------------
def test_step_failing_part_way_leaves_the_database_as_before_that_step(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """Eleven tables moved and then an error: the moves must not stay behind."""
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    line = _append(
        directory / "up" / "002_move_tables.sql", "ALTER TABLE no_such_table ADD COLUMN x int;"
    )
    plan = load_plan(directory)
    messages: list[str] = []
    with Runner(plan, dsn, progress=messages.append) as runner:
        _migrate_through(runner, 1)
        after_first = _fingerprint(dsn)
        with pytest.raises(StepFailed) as caught:
            runner.migrate()
    failure = caught.value
    assert failure.step == "up/002_move_tables.sql"
    assert failure.sqlstate == "42P01"
    assert f"up/002_move_tables.sql line {line}: " in str(failure)
    assert "no_such_table" in str(failure)
    assert failure.exit_code == 1
    assert any(m.startswith(f"FAILED up/002_move_tables.sql line {line}") for m in messages)

    assert _differences(after_first, dsn) == []
    assert _ledger(dsn, "kct") == [(1, plan.up[0].name, plan.up[0].checksum)]


def test_failed_first_step_leaves_the_database_as_before_migrate(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """When the very first step fails, "before that step" is the untouched legacy database."""
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    line = _append(
        directory / "up" / "001_create_roles_and_schemas.sql",
        "ALTER TABLE no_such_table ADD COLUMN x int;",
    )
    before = _fingerprint(dsn)
    with Runner(load_plan(directory), dsn) as runner, pytest.raises(StepFailed) as caught:
        runner.migrate()
    assert caught.value.step == "up/001_create_roles_and_schemas.sql"
    assert f"line {line}:" in str(caught.value)
    assert _differences(before, dsn) == []
    assert _ledger(dsn, "kct") == []


def test_syntax_error_names_sqlstate_42601_and_the_line(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A typo in a step is reported where it is, and nothing of the step is applied."""
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    path = directory / "up" / "001_create_roles_and_schemas.sql"
    path.write_text(path.read_text().replace("CREATE SCHEMA cache;", "CREATE SCHEM cache;"))
    line = _line_of(path, "CREATE SCHEM cache;")
    before = _fingerprint(dsn)
    with Runner(load_plan(directory), dsn) as runner, pytest.raises(StepFailed) as caught:
        runner.migrate()
    assert caught.value.sqlstate == "42601"
    assert f"up/001_create_roles_and_schemas.sql line {line}: syntax error" in str(caught.value)
    assert "[SQLSTATE 42601]" in str(caught.value)
    assert _differences(before, dsn) == []
    assert _ledger(dsn, "kct") == []


# -- lock timeouts --------------------------------------------------------------------
FAST_LOCKS = (
    '[runner]\nlock_timeout = "100ms"\nstatement_timeout = "60s"\nlock_retries = 2\n'
    'lock_budget = "60s"\n'
)


@pytest.fixture
def products_locked(legacy_database: LegacyDatabase) -> Iterator[Conn]:
    """Another session reading ``public.products`` in an open transaction.

    ACCESS SHARE (any SELECT) conflicts with the ACCESS EXCLUSIVE lock that
    ``ALTER TABLE … SET SCHEMA`` needs: the everyday situation of a migration
    meeting a long report query.
    """
    with psycopg.connect(legacy_database.endpoints.primary, connect_timeout=5) as conn:
        conn.execute("LOCK TABLE public.products IN ACCESS SHARE MODE")
        yield conn
        conn.rollback()


def test_lock_timeout_is_retried_with_backoff_then_fails(
    legacy_database: LegacyDatabase, tmp_path: Path, products_locked: Conn
) -> None:
    """A lock that is never released: bounded retries, then contention naming the holder."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(_copy_plan(tmp_path, runner=FAST_LOCKS))
    assert plan.runner.lock_retries == 2
    holder = products_locked.info.backend_pid
    messages: list[str] = []
    delays: list[float] = []
    with Runner(
        plan, dsn, progress=messages.append, sleep=delays.append, jitter=lambda: 0.0
    ) as runner:
        _migrate_through(runner, 1)
        after_first = _fingerprint(dsn)
        with pytest.raises(LockContention) as caught:
            runner.migrate()
    assert caught.value.step == "up/002_move_tables.sql"
    assert caught.value.attempts == 3
    assert caught.value.exit_code == 75
    message = str(caught.value)
    assert "could not get its locks in 3 attempts of at most 100ms each" in message
    assert "nothing of it changed" in message
    assert f"blocked by pid {holder} " in message
    retries = [m for m in messages if "lock not available" in m]
    assert len(retries) == 2
    assert retries[0].startswith(
        "up/002_move_tables.sql: lock not available (canceling statement due to lock timeout)"
    )
    assert retries[1].endswith("retrying in 0.10 sec")
    # 0.1 s doubling, half of it jitter (here none): never more than 2 s
    assert delays == [0.05, 0.1]
    assert _differences(after_first, dsn) == []
    assert [row[0] for row in _ledger(dsn, "kct")] == [1]


def test_lock_released_during_backoff_lets_the_retry_succeed(
    legacy_database: LegacyDatabase, tmp_path: Path, products_locked: Conn
) -> None:
    """The reason to retry at all: a report query finishes and the migration goes through."""
    dsn = legacy_database.endpoints.primary
    plan = load_plan(_copy_plan(tmp_path, runner=FAST_LOCKS))
    assert plan.runner.lock_retries == 2
    retrying = threading.Event()
    released = threading.Event()
    release_errors: list[BaseException] = []
    messages: list[str] = []

    def progress(message: str) -> None:
        messages.append(message)
        if "retrying" in message:
            retrying.set()

    def release_after_first_retry() -> None:
        try:
            if retrying.wait(HANDOFF_TIMEOUT):
                products_locked.rollback()
        except BaseException as exc:  # reported by the test thread below
            release_errors.append(exc)
        finally:
            released.set()

    def backoff(_seconds: float) -> None:
        # Instead of sleeping, the runner waits until the other session has let go,
        # so the retry meets a free table every time, on any machine.
        assert released.wait(HANDOFF_TIMEOUT), "the lock holder never let go"

    releaser = threading.Thread(target=release_after_first_retry, name="lock-releaser")
    releaser.start()
    outcomes: list[StepOutcome] = []
    try:
        with Runner(plan, dsn, progress=progress, sleep=backoff) as runner:
            runner.migrate(after_step=outcomes.append)
    finally:
        retrying.set()  # never leave the releaser waiting
        releaser.join(HANDOFF_TIMEOUT)
    assert not releaser.is_alive()
    assert release_errors == []
    assert [(o.step.number, o.applied, o.attempts) for o in outcomes] == [
        (1, True, 1),
        (2, True, 2),
        (3, True, 1),
        (4, True, 1),
        (5, True, 1),
        (6, True, 1),
    ]
    assert sum("retrying" in m for m in messages) == 1
    assert len(_ledger(dsn, "kct")) == 6
    assert _fingerprint(dsn).table_schema("products") == ["tenant_shared"]


# -- where the runner may not go ------------------------------------------------------
def test_replica_dsn_is_refused_as_a_standby(legacy_database: LegacyDatabase) -> None:
    """A migration pointed at the read replica would fail on its first statement; say why."""
    replica = legacy_database.endpoints.replica
    with pytest.raises(UsageError) as caught:
        Runner(load_plan(KCT), replica)
    message = str(caught.value)
    assert "read-only standby" in message
    assert redact(replica) in message
    assert "primary" in message
    assert caught.value.exit_code == 2


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A TCP port that is bound but not listening: connections to it are refused at once.

    Keeping it bound (rather than closing a probe socket) means no other process
    can start listening on it while the test runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://migrator:{secret}@127.0.0.1:{port}/legacy",
        "postgresql://migrator@127.0.0.1:{port}/legacy?password={secret}",
        "host=127.0.0.1 port={port} user=migrator password={secret} dbname=legacy",
        "host=127.0.0.1 port={port} user=migrator password='{secret} x' dbname=legacy",
    ],
    ids=["url", "url-query", "key-value", "key-value-quoted"],
)
def test_refused_connection_is_infrastructure_error_without_password(
    refusing_port: int, template: str
) -> None:
    """The message ends up in CI logs; the DSN's password must not."""
    dsn = template.format(port=refusing_port, secret=SECRET)
    with pytest.raises(InfrastructureError) as caught:
        Runner(load_plan(KCT), dsn)
    message = str(caught.value)
    assert "cannot connect to" in message
    assert str(refusing_port) in message
    assert "check the DSN" in message
    assert SECRET not in message
    assert caught.value.exit_code == 2


# -- the backup -----------------------------------------------------------------------
def _restore_scratch_databases(dsn: str, name: str) -> list[str]:
    """Scratch databases a backup check left behind: named after the database, any suffix."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
            (f"{name[:40]}_restore_check",),
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_backup_restores_to_an_identical_database(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The backup taken before the first step is proven by a restore, and cleans up after."""
    dsn = legacy_database.endpoints.primary
    backup = take_backup(dsn, directory=tmp_path / "backups")
    assert backup.path.parent == tmp_path / "backups"
    assert backup.path.name.startswith(legacy_database.name)
    assert backup.path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom-format magic
    assert backup.bytes == backup.path.stat().st_size > 0
    assert verify_backup(dsn, backup) == []
    assert _restore_scratch_databases(dsn, legacy_database.name) == []


def _wal_written(dsn: str, during: Callable[[], object]) -> int:
    """Bytes of WAL the server of ``dsn`` wrote while ``during`` ran."""
    with connect(dsn) as conn:
        start = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert start is not None
        during()
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", start
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_backup_proven_on_a_server_of_its_own_leaves_the_primary_wal_alone(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The restore on the primary goes into the WAL the replica replays and the change
    ledger decodes; on the cluster's scratch server, given the primary's roles first, it
    proves the same backup identical and writes next to nothing on the primary."""
    dsn = legacy_database.endpoints.primary
    backup = take_backup(dsn, directory=tmp_path / "backups", throwaway=True)
    on_primary = _wal_written(dsn, lambda: verify_backup(dsn, backup))
    found: list[list[str]] = []
    with cluster.scratch_server() as on:
        assert on is not None
        beside = _wal_written(dsn, lambda: found.append(verify_backup(dsn, backup, on=on)))
    assert found == [[]]
    assert on_primary > backup.bytes // 2
    assert beside < backup.bytes // 20, (beside, on_primary, backup.bytes)
    assert _restore_scratch_databases(dsn, legacy_database.name) == []


def test_backup_that_no_longer_matches_the_database_is_reported(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The comparison is real: a row deleted after the dump shows up as a difference."""
    dsn = legacy_database.endpoints.primary
    backup = take_backup(dsn, directory=tmp_path / "backups")
    with connect(dsn) as conn:
        conn.execute("DELETE FROM appointments WHERE id = (SELECT min(id) FROM appointments)")
    problems = verify_backup(dsn, backup)
    assert problems
    assert any("appointments" in p for p in problems)


def test_corrupted_backup_is_an_infrastructure_error(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A truncated dump (a full disk, a killed pg_dump) must never pass as a backup."""
    dsn = legacy_database.endpoints.primary
    backup = take_backup(dsn, directory=tmp_path / "backups")
    with backup.path.open("r+b") as f:
        f.truncate(backup.bytes // 2)
    with pytest.raises(InfrastructureError) as caught:
        verify_backup(dsn, backup)
    assert "pg_restore of the backup failed" in str(caught.value)
    assert _restore_scratch_databases(dsn, legacy_database.name) == []


# -- steps that cannot be one transaction ---------------------------------------------
def _index_step(directory: Path, up: str, down: str) -> None:
    (directory / "up" / "007_index.sql").write_text(up)
    (directory / "down" / "007_index.sql").write_text(down)


def _valid_indexes(dsn: str) -> dict[str, bool]:
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = ANY(%s) ORDER BY 1",
            (["orders_placed_at_idx", "orders_status_idx", "orders_nothing_idx"],),
        ).fetchall()
    return {str(r[0]): bool(r[1]) for r in rows}


def test_a_step_that_cannot_be_one_transaction_commits_each_statement(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """CREATE INDEX CONCURRENTLY refuses a transaction block, and a zero-downtime plan needs
    it: such a step runs statement by statement, is recorded once all of them ran, and
    rolls back the same way."""
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    _index_step(
        directory,
        up="CREATE INDEX CONCURRENTLY orders_placed_at_idx ON tenant_kct.orders (placed_at);\n"
        "CREATE INDEX CONCURRENTLY orders_status_idx ON tenant_kct.orders (status);\n",
        down="DROP INDEX CONCURRENTLY tenant_kct.orders_status_idx;\n"
        "DROP INDEX CONCURRENTLY tenant_kct.orders_placed_at_idx;\n",
    )
    plan = load_plan(directory)
    assert plan.up[-1].outside_transaction == "CREATE INDEX CONCURRENTLY"
    assert plan.up[0].outside_transaction is None
    before = _fingerprint(dsn)
    with Runner(plan, dsn) as runner:
        outcomes = runner.migrate()
        assert all(o.applied for o in outcomes), outcomes
        assert _valid_indexes(dsn) == {"orders_placed_at_idx": True, "orders_status_idx": True}
        assert [row[0] for row in _ledger(dsn, "kct")] == [1, 2, 3, 4, 5, 6, 7]
        runner.rollback()
    assert _differences(before, dsn) == []
    assert _ledger(dsn, "kct") == []


def test_a_failure_outside_a_transaction_says_what_stays_applied(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    dsn = legacy_database.endpoints.primary
    directory = _copy_plan(tmp_path)
    _index_step(
        directory,
        up="CREATE INDEX CONCURRENTLY orders_placed_at_idx ON tenant_kct.orders (placed_at);\n"
        "CREATE INDEX CONCURRENTLY orders_nothing_idx ON tenant_kct.orders (no_such_column);\n",
        down="DROP INDEX CONCURRENTLY IF EXISTS tenant_kct.orders_placed_at_idx;\n",
    )
    with Runner(load_plan(directory), dsn) as runner, pytest.raises(StepFailed) as caught:
        runner.migrate()
    message = str(caught.value)
    assert "up/007_index.sql line 2: " in message
    assert "no_such_column" in message
    assert "the 1 statement(s) before it stay applied" in message
    assert _valid_indexes(dsn) == {"orders_placed_at_idx": True}
    assert [row[0] for row in _ledger(dsn, "kct")] == [1, 2, 3, 4, 5, 6]
