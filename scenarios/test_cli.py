"""The ``harness`` command as CI runs it: a real process, its exit code, stdout and stderr.

Deploy scripts branch on the exit code (0 safe or done, 1 findings, 2 usage or
infrastructure), parse stdout, and show stderr to a human. Each contract is
checked on a real process against a fresh copy of the legacy database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.catalog import diff, fingerprint
from harness.dsn import with_login
from harness.plan import load_plan
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

PLANS = Path(__file__).resolve().parent.parent / "plans"
KCT = PLANS / "kct"
UP_STEPS = [p.name for p in sorted((KCT / "up").iterdir())]


def _harness(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness.cli`` from this interpreter, as the console script does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env=env,
    )


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def _ledger_steps(dsn: str) -> list[object]:
    with connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('pgcutover.ledger') IS NOT NULL").fetchone()
        if exists != (True,):
            return []
        return [r[0] for r in conn.execute("SELECT step FROM pgcutover.ledger ORDER BY step")]


def test_migrate_dry_run_lists_steps_and_changes_nothing(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A reviewer reads the dry run's stdout; it must list every step and run none."""
    dsn = legacy_database.endpoints.primary
    done = _harness(
        "migrate", "--plan", KCT, "--dsn", dsn, "--dry-run", "--reports", tmp_path, cwd=tmp_path
    )
    assert done.returncode == 0, _explain(done)
    listed = [ln for ln in done.stdout.splitlines() if ln.startswith("would apply ")]
    assert [ln.split()[2] for ln in listed] == [f"up/{name}" for name in UP_STEPS]
    assert listed[1] == "would apply up/002_move_tables.sql (24 statements)"
    statement_lines = [ln for ln in done.stdout.splitlines() if ln.startswith("    line ")]
    assert len(statement_lines) == sum(len(step.statements) for step in load_plan(KCT).up)
    assert "harness:" not in done.stdout
    assert _ledger_steps(dsn) == []
    assert not (tmp_path / "backups").exists(), "a dry run took a backup"


def test_migrate_dry_run_shows_each_statement_not_its_comment(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The reviewer must see what runs at each line, not the prose above it."""
    done = _harness(
        "migrate",
        "--plan",
        KCT,
        "--dsn",
        legacy_database.endpoints.primary,
        "--dry-run",
        "--reports",
        tmp_path,
        cwd=tmp_path,
    )
    assert done.returncode == 0, _explain(done)
    assert "    line 18: CREATE SCHEMA tenant_shared\n" in done.stdout
    assert "    line 5: DO $$ BEGIN IF NOT EXISTS" in done.stdout
    shown = [ln.split(": ", 1)[1] for ln in done.stdout.splitlines() if ln.startswith("    line ")]
    assert not [text for text in shown if text.startswith("--")]


VERIFY_CHECKS = {
    "layout.as_planned",
    "foreign_keys.hold",
    "privileges.tried",
    "dependencies.resolve",
    "sessions.new_sessions_work",
}
BASELINE_CHECKS = {
    "data.unchanged",
    "tables.intact",
    "sequences.not_reset",
    "compatibility_views.faithful",
    "connections.room",
    "settings.for_sessions",
    "privileges.granted",
    "sessions.old_sessions_as_roles",
}


def test_migrate_backs_up_then_applies_and_verify_passes(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """The deploy path: fingerprint, migrate after a proven backup, verify against both."""
    dsn = legacy_database.endpoints.primary
    reports = tmp_path / "reports"
    baseline = _harness("fingerprint", "--dsn", dsn, cwd=tmp_path)
    assert baseline.returncode == 0, _explain(baseline)
    (tmp_path / "before.json").write_text(baseline.stdout)

    done = _harness("migrate", "--plan", KCT, "--dsn", dsn, "--reports", reports, cwd=tmp_path)
    assert done.returncode == 0, _explain(done)
    applied = [ln.split()[1] for ln in done.stdout.splitlines()]
    assert applied == [f"up/{name}" for name in UP_STEPS]
    # Progress goes to stderr, each line marked; stdout holds only results.
    assert "harness: applying up/001_create_roles_and_schemas.sql" in done.stderr
    assert "restores identically" in done.stderr
    assert "harness:" not in done.stdout
    backups = list((reports / "backups").glob("*.dump"))
    assert len(backups) == 1
    assert backups[0].name.startswith(legacy_database.name)
    assert _ledger_steps(dsn) == [1, 2, 3, 4, 5, 6]

    again = _harness("migrate", "--plan", KCT, "--dsn", dsn, "--reports", reports, cwd=tmp_path)
    assert again.returncode == 0, _explain(again)
    assert again.stdout == "nothing to do\n"
    assert len(list((reports / "backups").glob("*.dump"))) == 1, "backed up with nothing to do"

    verify = _harness(
        "verify",
        "--plan",
        KCT,
        "--dsn",
        dsn,
        "--reader-dsn",
        legacy_database.endpoints.replica,
        "--baseline",
        tmp_path / "before.json",
        "--login",
        "kct_app=" + with_login(dsn, user="kct_app", password=None),
        "--reports",
        reports,
        cwd=tmp_path,
    )
    assert verify.returncode == 0, _explain(verify)
    report = json.loads((reports / "verify.json").read_text())
    assert report["verdict"] == "safe"
    assert report["failed"] == []
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    assert set(verdicts) == VERIFY_CHECKS | BASELINE_CHECKS | {"replica.matches_primary"} | {
        "privileges.logged_in"
    }
    # Only kct_app has a --login: kct_readonly's login is the one thing left untried.
    assert {n for n, v in verdicts.items() if v != "pass"} == {"privileges.logged_in"}
    assert report["not_run"] == ["privileges.logged_in"]
    logged_in = next(c for c in report["checks"] if c["name"] == "privileges.logged_in")
    assert "no login of kct_readonly is known" in logged_in["reason"]
    assert "PASS layout.as_planned" in verify.stdout
    tried = next(c for c in report["checks"] if c["name"] == "privileges.tried")
    assert "kct_app logged in with its --login" in tried["reason"]
    assert "kct_readonly SET ROLE (no login of it known to the harness)" in tried["reason"]

    wrong = _harness(
        "verify", "--plan", KCT, "--dsn", dsn, "--login", f"kct_app={dsn}", cwd=tmp_path
    )
    assert wrong.returncode == 2
    assert "the DSN logs in as postgres, not kct_app" in wrong.stderr


def test_verify_on_unmigrated_database_exits_1(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """Exit 1 means "checked, and not as the plan promises": nothing has moved yet."""
    reports = tmp_path / "reports"
    done = _harness(
        "verify",
        "--plan",
        KCT,
        "--dsn",
        legacy_database.endpoints.primary,
        "--reports",
        reports,
        cwd=tmp_path,
    )
    assert done.returncode == 1, _explain(done)
    report = json.loads((reports / "verify.json").read_text())
    assert report["verdict"] == "unsafe"
    assert {c["name"] for c in report["checks"] if c["verdict"] != "not_run"} == VERIFY_CHECKS
    # Without --baseline and --reader-dsn, what they would have added is listed as not run.
    assert set(report["not_run"]) >= BASELINE_CHECKS | {"replica.matches_primary"}
    assert "layout.as_planned" in report["failed"]
    layout = next(c for c in report["checks"] if c["name"] == "layout.as_planned")
    assert any("suppliers" in d for d in layout["details"]), layout
    assert "FAIL layout.as_planned" in done.stdout


def test_rollback_exits_0_and_restores_the_database(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """``harness rollback`` undoes ``harness migrate``, newest step first."""
    dsn = legacy_database.endpoints.primary
    with connect(dsn) as conn:
        before = fingerprint(conn)
    migrate = _harness(
        "migrate", "--plan", KCT, "--dsn", dsn, "--no-backup", "--reports", tmp_path, cwd=tmp_path
    )
    assert migrate.returncode == 0, _explain(migrate)
    assert not (tmp_path / "backups").exists(), "--no-backup took a backup"

    done = _harness("rollback", "--plan", KCT, "--dsn", dsn, "--reports", tmp_path, cwd=tmp_path)
    assert done.returncode == 0, _explain(done)
    reverted = [ln.split()[1] for ln in done.stdout.splitlines()]
    assert reverted == [f"down/{name}" for name in reversed(UP_STEPS)]
    assert _ledger_steps(dsn) == []
    with connect(dsn) as conn:
        assert [str(d) for d in diff(before, fingerprint(conn))] == []


def test_malformed_plan_exits_2_naming_the_file(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A plan with a missing rollback step is refused before anything connects or runs."""
    plan = tmp_path / "plan"
    shutil.copytree(KCT, plan)
    (plan / "down" / "004_audit.sql").unlink()
    dsn = legacy_database.endpoints.primary
    done = _harness("migrate", "--plan", plan, "--dsn", dsn, "--reports", tmp_path, cwd=tmp_path)
    assert done.returncode == 2, _explain(done)
    assert "harness: error: up/004_audit.sql has no rollback" in done.stderr
    assert "add down/004_audit.sql" in done.stderr
    assert done.stdout == ""
    assert _ledger_steps(dsn) == []


@pytest.mark.parametrize("command", ["migrate", "rollback"])
def test_replica_dsn_exits_2(legacy_database: LegacyDatabase, tmp_path: Path, command: str) -> None:
    """Pointing the runner at the read replica is a usage error, said plainly."""
    done = _harness(
        command,
        "--plan",
        KCT,
        "--dsn",
        legacy_database.endpoints.replica,
        "--reports",
        tmp_path,
        cwd=tmp_path,
    )
    assert done.returncode == 2, _explain(done)
    assert "read-only standby" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_verify_with_replica_as_dsn_exits_2(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """``verify --dsn`` must be the primary; a standby given there is a usage error."""
    done = _harness(
        "verify",
        "--plan",
        KCT,
        "--dsn",
        legacy_database.endpoints.replica,
        "--reports",
        tmp_path,
        cwd=tmp_path,
    )
    assert "Traceback" not in done.stderr, _explain(done)
    assert done.returncode == 2, _explain(done)
    assert "standby" in done.stderr


def test_seed_into_non_empty_database_exits_2(
    legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """Seeding over a database that has tables would mix two datasets; it is refused."""
    done = _harness("seed", "--dsn", legacy_database.endpoints.primary, cwd=tmp_path)
    assert done.returncode == 2, _explain(done)
    assert "is not empty" in done.stderr
    assert done.stdout == ""


def test_fingerprint_prints_json(legacy_database: LegacyDatabase, tmp_path: Path) -> None:
    """``harness fingerprint > before.json`` is the baseline ``verify --baseline`` reads."""
    dsn = legacy_database.endpoints.primary
    done = _harness("fingerprint", "--dsn", dsn, cwd=tmp_path)
    assert done.returncode == 0, _explain(done)
    printed = json.loads(done.stdout)
    with connect(dsn) as conn:
        assert printed == json.loads(json.dumps(fingerprint(conn).to_json()))
    assert printed["tables"]["public.customers"]["rows"] == 3369


def test_fingerprint_of_unreachable_server_exits_2_without_password(tmp_path: Path) -> None:
    """The error goes to CI logs: no password, and exit 2 (infrastructure)."""
    done = _harness(
        "fingerprint", "--dsn", "postgresql://u:hunter2@127.0.0.1:1/nowhere", cwd=tmp_path
    )
    assert done.returncode == 2, _explain(done)
    assert "cannot connect" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("up", "--scale", "0"), "must be at least 1, got 0"),
        (("up", "--scale", "many"), "'many' is not a whole number"),
        (("migrate", "--plan", "plans/kct"), "the following arguments are required: --dsn"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: tuple[str, ...], complaint: str) -> None:
    """argparse's exit 2 matches the harness's own usage errors, so CI sees one code."""
    done = _harness(*args, cwd=tmp_path)
    assert done.returncode == 2, _explain(done)
    assert complaint in done.stderr
    assert done.stdout == ""
