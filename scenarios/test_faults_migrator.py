"""The migrator killed, doubled or blocked in the middle of a step, on a real primary.

A CI job cancelled mid-migration sends SIGTERM; an OOM killer or an operator
sends SIGKILL. Either way the database must be as before the step, the step's
locks must be gone within about a second (the application queues behind them),
and the next run must finish the job. A second migrate started meanwhile must
refuse, naming the first. A long transaction in the way must never stall the
application for more than one short attempt, and must end in "retry later"
(exit 75) with the blocker named, not in a finding.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.catalog import diff, fingerprint
from harness.cli import main
from harness.databases import create_database, database_exists
from harness.errors import LockContention
from harness.plan import load_plan
from harness.runner import Runner
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

HARNESS = [sys.executable, "-m", "harness.cli"]
APP = "pgcutover faults up/001_add_column.sql"
# Generous bounds for a shared 2-core machine: what is measured is well below them.
LOCKS_GONE_WITHIN = 2.0
WAIT = 30.0

Conn = psycopg.Connection[tuple[object, ...]]

PLAN_TOML = """\
name = "faults"

[runner]
lock_timeout = "{lock_timeout}"
statement_timeout = "60s"
lock_retries = 20
lock_budget = "{lock_budget}"
"""
# The pause is read from a table the step does not change, so the same file (same
# checksum) pauses in the killed run and runs straight through in the rerun.
UP = """\
ALTER TABLE public.products ADD COLUMN fault_note text;
SELECT pg_sleep(coalesce((SELECT max(seconds) FROM public.fault_pause), 0));
"""
DOWN = "ALTER TABLE public.products DROP COLUMN fault_note;\n"


def write_plan(root: Path, *, lock_timeout: str = "200ms", lock_budget: str = "15s") -> Path:
    directory = root / "faults-plan"
    for sub in ("up", "down"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "plan.toml").write_text(
        PLAN_TOML.format(lock_timeout=lock_timeout, lock_budget=lock_budget)
    )
    (directory / "up" / "001_add_column.sql").write_text(UP)
    (directory / "down" / "001_add_column.sql").write_text(DOWN)
    return directory


def _has_column(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'products' AND column_name = 'fault_note'"
    ).fetchone()
    return row == (1,)


def _locks_on_products(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE relation = 'public.products'::regclass"
        " AND pid <> pg_backend_pid()"
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _wait_for(condition: str, probe: object, *, timeout: float = WAIT) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def _migrate(plan: Path, dsn: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARNESS, "migrate", "--plan", str(plan), "--dsn", dsn, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def paused(legacy_database: LegacyDatabase) -> Iterator[Conn]:
    with connect(legacy_database.endpoints.primary) as conn:
        conn.execute("CREATE TABLE public.fault_pause (seconds float8)")
        conn.execute("INSERT INTO public.fault_pause VALUES (60)")
        yield conn


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killed_migrator_releases_its_locks_and_the_rerun_completes(
    legacy_database: LegacyDatabase, tmp_path: Path, paused: Conn, sig: signal.Signals
) -> None:
    dsn = legacy_database.endpoints.primary
    plan = write_plan(tmp_path)
    before = fingerprint(paused)
    first = _migrate(plan, dsn, "--no-backup")
    try:
        _wait_for(
            "the step to pause holding its lock",
            lambda: (
                paused.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s AND wait_event = 'PgSleep'",
                    (APP,),
                ).fetchone()
                == (1,)
            ),
        )
        assert _locks_on_products(paused) >= 1
        holder = paused.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP,)
        ).fetchone()
        assert holder is not None

        # A second migrate meanwhile: refused, naming the first, nothing done.
        second = subprocess.run(
            [*HARNESS, "migrate", "--plan", str(plan), "--dsn", dsn, "--no-backup"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert "another pgcutover migrate or rollback is running" in second.stderr
        assert f"pid {holder[0]} (application 'pgcutover faults" in second.stderr

        first.send_signal(sig)
        killed = time.monotonic()
        _wait_for("the locks to go", lambda: _locks_on_products(paused) == 0)
        released = time.monotonic() - killed
        _, stderr = first.communicate(timeout=WAIT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    print(f"\nlocks on products released {released:.2f} sec after {sig.name}")
    assert released <= LOCKS_GONE_WITHIN
    if sig is signal.SIGTERM:
        assert first.returncode == 143
        assert "terminated (SIGTERM)" in stderr
    else:
        assert first.returncode == -signal.SIGKILL
    assert not _has_column(paused), "the killed step left its change behind"
    assert [str(d) for d in diff(before, fingerprint(paused))] == []

    # A killed run's scratch copy of the restore check, as the next run finds it.
    leftover = f"{legacy_database.name}_restore_check_424242"
    create_database(dsn, leftover)
    paused.execute("DELETE FROM public.fault_pause")
    rerun = _migrate(plan, dsn)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert "applied up/001_add_column.sql" in out
    assert f"dropped {leftover}" in err
    assert not database_exists(dsn, leftover)
    assert _has_column(paused)


def _reader(dsn: str, stop: threading.Event, stalls: list[float]) -> None:
    with connect(dsn) as conn:
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute("SELECT count(*) FROM public.products")
            stalls.append(time.perf_counter() - started)
            time.sleep(0.005)


def test_a_held_lock_stalls_readers_one_short_attempt_at_most_and_exits_75(
    legacy_database: LegacyDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report holds products open; the step retries briefly, then names it and exits 75."""
    dsn = legacy_database.endpoints.primary
    plan = write_plan(tmp_path, lock_timeout="200ms", lock_budget="2s")
    with psycopg.connect(dsn, connect_timeout=5, application_name="nightly_report") as holder:
        holder.execute("SELECT count(*) FROM public.products")  # ACCESS SHARE, held
        stop = threading.Event()
        stalls: list[float] = []
        reader = threading.Thread(target=_reader, args=(dsn, stop, stalls), daemon=True)
        reader.start()
        try:
            with Runner(load_plan(plan), dsn) as runner, pytest.raises(LockContention) as caught:
                runner.migrate()
            code = main(["migrate", "--plan", str(plan), "--dsn", dsn, "--no-backup"])
        finally:
            stop.set()
            reader.join(WAIT)
        pid = holder.info.backend_pid
        holder.rollback()
    assert code == 75
    err = capsys.readouterr().err
    assert "could not get its locks" in err
    message = str(caught.value)
    assert f"blocked by pid {pid} (application 'nightly_report', user postgres" in message
    assert "SELECT count(*) FROM public.products" in message
    assert caught.value.attempts >= 2
    worst = max(stalls)
    print(f"\nworst reader stall behind a 200ms lock attempt: {worst:.3f} sec")
    # One attempt's lock_timeout plus a loaded machine's scheduling, never the budget.
    assert worst < 0.2 + 0.6
    with connect(dsn) as conn:
        assert not _has_column(conn)
        assert _locks_on_products(conn) == 0


def test_seed_aimed_at_a_standby_says_so(legacy_database: LegacyDatabase) -> None:
    from harness.errors import UsageError
    from harness.legacy import seed

    with pytest.raises(
        UsageError, match=r"is a read-only standby .*seed the primary's database instead"
    ):
        seed(legacy_database.endpoints.replica)


def test_legacy_accepts_a_pg_dump_directory(
    legacy_database: LegacyDatabase, empty_dsn: str, tmp_path: Path
) -> None:
    from harness.cluster.binaries import find_binaries

    archive = tmp_path / "legacy.dir"
    subprocess.run(
        [
            find_binaries().path("pg_dump"),
            "-Fd",
            "-f",
            str(archive),
            "-d",
            legacy_database.endpoints.primary,
        ],
        check=True,
        timeout=120,
    )
    done = subprocess.run(
        [*HARNESS, "seed", "--dsn", empty_dsn, "--legacy", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "(directory archive)" in done.stderr
    assert "products\t37\n" in done.stdout.splitlines(keepends=True)
