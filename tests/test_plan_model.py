"""Loading plan directories, without a database: the shipped plans, and every malformed one.

A plan is input written by hand. Each mistake in it must be stopped before any
SQL runs, with a message that names the file and says how to fix it: an
engineer should not have to read the harness to understand a typo.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from harness.errors import PlanError, UsageError
from harness.plan import RunnerSettings, load_plan

PLANS = Path(__file__).resolve().parent.parent / "plans"

MINIMAL_TOML = 'name = "tiny"\n'


def _write_plan(
    root: Path,
    *,
    toml: str | bytes | None = MINIMAL_TOML,
    up: dict[str, str | bytes] | None = None,
    down: dict[str, str | bytes] | None = None,
) -> Path:
    """A plan directory under ``root``; by default one step with its rollback."""
    directory = root / "plan"
    directory.mkdir()
    if toml is not None:
        raw = toml if isinstance(toml, bytes) else textwrap.dedent(toml).encode()
        (directory / "plan.toml").write_bytes(raw)
    for folder, files in (
        ("up", {"001_create.sql": "CREATE SCHEMA s;\n"} if up is None else up),
        ("down", {"001_create.sql": "DROP SCHEMA s;\n"} if down is None else down),
    ):
        (directory / folder).mkdir()
        for name, text in files.items():
            (directory / folder / name).write_bytes(
                text if isinstance(text, bytes) else text.encode()
            )
    return directory


def _plan_error(directory: Path) -> str:
    with pytest.raises(PlanError) as caught:
        load_plan(directory)
    return str(caught.value)


# -- the plans that ship --------------------------------------------------------------
def test_kct_plan_loads_with_its_six_steps() -> None:
    """The corrected plan is the one the gate must pass; its shape is part of the contract."""
    plan = load_plan(PLANS / "kct")
    names = [
        "create_roles_and_schemas",
        "move_tables",
        "grant_privileges",
        "audit",
        "cache",
        "search_path",
    ]
    assert plan.name == "kct"
    assert [(s.number, s.name, s.direction) for s in plan.up] == [
        (n, name, "up") for n, name in enumerate(names, 1)
    ]
    assert [(s.number, s.name, s.direction) for s in plan.down] == [
        (n, name, "down") for n, name in enumerate(names, 1)
    ]
    assert plan.up[1].label == "up/002_move_tables.sql"
    assert plan.down_for(2).label == "down/002_move_tables.sql"
    assert plan.runner == RunnerSettings(
        lock_timeout="200ms", statement_timeout="60s", lock_retries=20, lock_budget="15s"
    )
    assert len(plan.layout.tables) == 11
    assert plan.layout.tables["public.order_items"] == "tenant_kct"
    assert plan.layout.target("public.suppliers") == "tenant_shared.suppliers"
    assert plan.layout.roles == ("kct_app", "kct_readonly")
    assert set(plan.layout.schemas) == {
        "tenant_shared",
        "tenant_kct",
        "analytics",
        "cache",
        "audit",
    }
    assert plan.layout.new_tables == ("audit.audit_log", "audit.change_history")
    assert len(plan.session_queries) == 3
    audit = [p for p in plan.privileges if p.role == "kct_app" and p.on == "audit"]
    assert len(audit) == 1
    assert audit[0].is_schema
    assert audit[0].deny == {"USAGE", "CREATE"}
    assert not audit[0].allow


def test_checksum_is_sha256_of_the_file_bytes() -> None:
    """The ledger compares this to what was applied; it must be the file's own digest."""
    plan = load_plan(PLANS / "kct")
    for step in (*plan.up, *plan.down):
        assert step.checksum == hashlib.sha256(step.path.read_bytes()).hexdigest()
        assert step.statements, f"{step.label} has no statements"


def test_as_written_plan_loads_with_its_four_steps_and_default_runner() -> None:
    """The plan as written has no [runner] table: the defaults must apply."""
    plan = load_plan(PLANS / "as-written")
    assert plan.name == "as-written"
    assert [s.label for s in plan.up] == [
        "up/001_create_schemas.sql",
        "up/002_grant_permissions.sql",
        "up/003_move_tables.sql",
        "up/004_update_search_path.sql",
    ]
    assert [s.number for s in plan.down] == [1, 2, 3, 4]
    assert plan.runner == RunnerSettings()
    assert plan.layout.target("public.customers") == "tenant_kct.customers"
    assert plan.layout.materialized_views == ()


def test_minimal_plan_loads(tmp_path: Path) -> None:
    """The builder makes a valid plan: each malformed case below differs by one thing."""
    plan = load_plan(_write_plan(tmp_path))
    assert plan.name == "tiny"
    assert [s.label for s in plan.up] == ["up/001_create.sql"]
    assert plan.privileges == ()


# -- malformed plans ------------------------------------------------------------------
def test_missing_plan_toml(tmp_path: Path) -> None:
    """A directory without plan.toml (a wrong --plan path, usually)."""
    directory = _write_plan(tmp_path, toml=None)
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert "missing" in message
    assert "up/" in message
    assert "down/" in message


def test_plan_error_is_a_usage_error(tmp_path: Path) -> None:
    """A bad plan is bad input: exit code 2, not 1 ("the plan was checked and is unsafe")."""
    with pytest.raises(UsageError) as caught:
        load_plan(tmp_path / "nowhere")
    assert caught.value.exit_code == 2


def test_invalid_toml_names_file_and_position(tmp_path: Path) -> None:
    """The TOML parser's line and column are the fix's address."""
    directory = _write_plan(tmp_path, toml='name = "tiny"\n[layout\nschemas = []\n')
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert "not valid TOML" in message
    assert "line 2" in message


@pytest.mark.parametrize(
    "toml",
    ['description = "no name"\n', 'name = ""\n', "name = 3\n"],
    ids=["absent", "empty", "not-a-string"],
)
def test_missing_name(tmp_path: Path, toml: str) -> None:
    """The ledger keys applied steps by plan name; a plan needs one."""
    directory = _write_plan(tmp_path, toml=toml)
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert 'name = "..."' in message


def test_up_step_without_down_step(tmp_path: Path) -> None:
    """Every step must be reversible, or rollback cannot restore the database."""
    directory = _write_plan(
        tmp_path,
        up={"001_create.sql": "CREATE SCHEMA s;", "002_more.sql": "CREATE SCHEMA t;"},
    )
    message = _plan_error(directory)
    assert "up/002_more.sql has no rollback" in message
    assert "add down/002_more.sql" in message


def test_down_step_without_up_step(tmp_path: Path) -> None:
    """An orphan rollback step is a renumbering mistake; it would never run."""
    directory = _write_plan(
        tmp_path,
        down={"001_create.sql": "DROP SCHEMA s;", "003_orphan.sql": "DROP SCHEMA t;"},
    )
    message = _plan_error(directory)
    assert "down/003_orphan.sql" in message
    assert "up/ does not have" in message


@pytest.mark.parametrize(
    "name",
    ["2-move.sql", "002 move.sql", "002_move.SQL", "move.sql", "002_.sql", "notes.txt"],
)
def test_bad_step_file_name(tmp_path: Path, name: str) -> None:
    """A file that is not NNN_name.sql would be silently skipped or misordered."""
    directory = _write_plan(
        tmp_path, up={"001_create.sql": "CREATE SCHEMA s;", name: "CREATE SCHEMA t;"}
    )
    message = _plan_error(directory)
    assert str(directory / "up" / name) in message
    assert "NNN_name.sql" in message
    assert "001_create_schemas.sql" in message


def test_duplicate_step_number(tmp_path: Path) -> None:
    """Two files with one number: the order between them would be the file system's."""
    directory = _write_plan(
        tmp_path,
        up={"001_create.sql": "CREATE SCHEMA s;", "1_again.sql": "CREATE SCHEMA t;"},
    )
    message = _plan_error(directory)
    assert str(directory / "up" / "1_again.sql") in message
    assert "step number 1 is used twice" in message


def test_duplicate_step_number_names_both_files(tmp_path: Path) -> None:
    """To renumber one of two clashing files, the user needs to know both of them."""
    directory = _write_plan(
        tmp_path,
        up={"001_create.sql": "CREATE SCHEMA s;", "1_again.sql": "CREATE SCHEMA t;"},
    )
    message = _plan_error(directory)
    assert "001_create.sql" in message
    assert "1_again.sql" in message


@pytest.mark.parametrize(
    ("statement", "word"),
    [
        ("COMMIT;", "COMMIT"),
        ("begin;", "BEGIN"),
        ("START TRANSACTION;", "START"),
        ("END;", "END"),
        ("ROLLBACK;", "ROLLBACK"),
        ("/* sneaky */ Abort;", "ABORT"),
    ],
)
def test_step_with_transaction_control_names_the_line(
    tmp_path: Path, statement: str, word: str
) -> None:
    """The runner owns each step's transaction; a COMMIT inside would end it part way."""
    sql = "-- grants\nCREATE SCHEMA s;\n\n" + statement + "\nCREATE SCHEMA t;\n"
    directory = _write_plan(tmp_path, up={"001_create.sql": sql})
    message = _plan_error(directory)
    assert message.startswith(f"up/001_create.sql line 4: {word} ")
    assert "remove transaction control" in message


def test_transaction_words_inside_a_do_block_are_allowed(tmp_path: Path) -> None:
    """plpgsql's BEGIN … END is not transaction control; refusing it would refuse every DO."""
    sql = "DO $$\nBEGIN\n  PERFORM 1;\nEND\n$$;\n"
    plan = load_plan(_write_plan(tmp_path, up={"001_create.sql": sql}))
    assert [s.line for s in plan.up[0].statements] == [1]


@pytest.mark.parametrize(
    ("on", "op", "valid"),
    [
        ("tenant_shared", "SELECT", "CREATE, USAGE"),
        ("tenant_shared.*", "USAGE", "DELETE, INSERT, SELECT, UPDATE"),
        ("tenant_shared.products", "TRUNCATE", "DELETE, INSERT, SELECT, UPDATE"),
    ],
)
def test_privilege_that_cannot_be_tried_on_its_target(
    tmp_path: Path, on: str, op: str, valid: str
) -> None:
    """Privileges are proven by trying them; SELECT on a schema cannot be tried."""
    toml = f"""\
        name = "tiny"

        [[privileges]]
        role = "kct_app"
        on = "{on}"
        allow = ["{op.lower()}"]
        """
    message = _plan_error(_write_plan(tmp_path, toml=toml))
    assert "plan.toml" in message
    assert "[[privileges]] #1" in message
    assert f"{op} cannot be tried on {on!r}" in message
    assert f"choose from {valid}" in message


def test_unknown_runner_key(tmp_path: Path) -> None:
    """A misspelt setting must not be ignored: the default would run instead, unnoticed."""
    toml = """\
        name = "tiny"
        [runner]
        lock_timout = "1s"
        """
    directory = _write_plan(tmp_path, toml=toml)
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert "[runner] has unknown key(s) lock_timout" in message


def test_unknown_runner_key_lists_the_known_ones(tmp_path: Path) -> None:
    """A typo is fixed by seeing the right spelling."""
    toml = 'name = "tiny"\n[runner]\nlock_timout = "1s"\n'
    message = _plan_error(_write_plan(tmp_path, toml=toml))
    assert "lock_timeout" in message.replace("lock_timout", "")


@pytest.mark.parametrize(
    "toml",
    ['name = "tiny"\n[runer]\nlock_retries = 0\n', 'name = "tiny"\nlock_retries = 0\n'],
    ids=["misspelt-table", "key-outside-its-table"],
)
def test_unknown_top_level_key_is_refused(tmp_path: Path, toml: str) -> None:
    """A setting the loader does not read must not look as if it had been applied."""
    message = _plan_error(_write_plan(tmp_path, toml=toml))
    assert "plan.toml" in message


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ('lock_timeout = "soon"', "lock_timeout must be a duration"),
        ('statement_timeout = "1 week"', "statement_timeout must be a duration"),
        ("lock_retries = 21", "lock_retries must be a whole number 0..20"),
        ('lock_retries = "2"', "lock_retries must be a whole number 0..20"),
    ],
)
def test_bad_runner_values(tmp_path: Path, setting: str, complaint: str) -> None:
    """The runner passes these to SET LOCAL; a bad one would fail mid-migration instead."""
    directory = _write_plan(tmp_path, toml=f'name = "tiny"\n[runner]\n{setting}\n')
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert complaint in message


def test_boolean_lock_retries_is_refused(tmp_path: Path) -> None:
    """``true`` is not a count; a plan that says it has a mistake worth reporting."""
    _plan_error(_write_plan(tmp_path, toml='name = "tiny"\n[runner]\nlock_retries = true\n'))


def test_non_utf8_step_file(tmp_path: Path) -> None:
    """A Latin-1 file would otherwise reach the server as mojibake, or fail there."""
    directory = _write_plan(tmp_path, up={"001_create.sql": b"-- caf\xe9\nCREATE SCHEMA s;\n"})
    message = _plan_error(directory)
    assert str(directory / "up" / "001_create.sql") in message
    assert "not UTF-8" in message


def test_non_utf8_plan_toml(tmp_path: Path) -> None:
    """TOML is UTF-8 by definition; the error still names the file and the encoding."""
    directory = _write_plan(tmp_path, toml=b'name = "caf\xe9"\n')
    message = _plan_error(directory)
    assert str(directory / "plan.toml") in message
    assert re.search("utf-8", message, re.IGNORECASE)


def test_missing_up_folder(tmp_path: Path) -> None:
    """A plan without steps is a wrong directory, not an empty migration."""
    directory = _write_plan(tmp_path)
    for f in (directory / "up").iterdir():
        f.unlink()
    (directory / "up").rmdir()
    message = _plan_error(directory)
    assert str(directory / "up") in message
    assert "NNN_name.sql" in message


def test_empty_up_folder(tmp_path: Path) -> None:
    """An up/ with no step would 'migrate' successfully by doing nothing."""
    message = _plan_error(_write_plan(tmp_path, up={}, down={}))
    assert "no steps" in message
    assert "add up/001_name.sql" in message


def test_hidden_files_and_folders_in_steps_are_ignored(tmp_path: Path) -> None:
    """Editors leave ``.swp`` files; they are not steps."""
    directory = _write_plan(tmp_path)
    (directory / "up" / ".001_create.sql.swp").write_bytes(b"\x00junk")
    (directory / "up" / "drafts").mkdir()
    plan = load_plan(directory)
    assert [s.label for s in plan.up] == ["up/001_create.sql"]


def test_identifiers_may_be_quoted_or_mixed_case(tmp_path: Path) -> None:
    """Unquoted names fold to lower case as PostgreSQL folds them; quoted ones are kept."""
    plan = tmp_path / "plan"
    (plan / "up").mkdir(parents=True)
    (plan / "down").mkdir()
    (plan / "up/001_a.sql").write_text("SELECT 1;\n")
    (plan / "down/001_a.sql").write_text("SELECT 1;\n")
    (plan / "plan.toml").write_text(
        'name = "q"\n[layout]\nschemas = [\'"Music"\', "Sales"]\nroles = [\'"App Role"\']\n'
        '[layout.tables]\n\'public."Track"\' = \'"Music"\'\n"Public.Invoice" = "sales"\n'
        '[[privileges]]\nrole = \'"App Role"\'\non = \'"Music".*\'\nallow = ["SELECT"]\n'
        "[rollback]\nkeeps_roles = ['\"App Role\"']\n"
    )
    loaded = load_plan(plan)
    assert loaded.layout.schemas == ("Music", "sales")
    assert loaded.layout.roles == ("App Role",)
    assert loaded.layout.tables == {"public.Track": "Music", "public.invoice": "sales"}
    assert loaded.layout.target("public.Track") == "Music.Track"
    (rule,) = loaded.privileges
    assert (rule.role, rule.schema, rule.relation, rule.is_schema) == (
        "App Role",
        "Music",
        None,
        False,
    )
    assert loaded.keeps_roles == ("App Role",)
    assert loaded.compatibility_views == "warn"


def test_legacy_dump_is_found_beside_the_plan(tmp_path: Path) -> None:
    """``legacy`` travels with the plan: relative to its directory, wherever it runs from."""
    directory = _write_plan(tmp_path, toml=MINIMAL_TOML + 'legacy = "schema.sql"\n')
    (directory / "schema.sql").write_text("CREATE TABLE t (id int);\n")
    assert load_plan(directory).legacy == directory / "schema.sql"
    (directory / "plan.toml").write_text(MINIMAL_TOML)
    assert load_plan(directory).legacy is None


def test_missing_legacy_dump_names_the_path_and_the_fix(tmp_path: Path) -> None:
    directory = _write_plan(tmp_path, toml=MINIMAL_TOML + 'legacy = "gone.sql"\n')
    message = _plan_error(directory)
    assert str(directory / "gone.sql") in message
    assert "relative to the plan's directory" in message


def test_legacy_given_on_the_command_line_wins_over_a_missing_plan_dump(tmp_path: Path) -> None:
    """``--legacy`` names the dump to use: the plan's own, missing here, is not needed."""
    directory = _write_plan(tmp_path, toml=MINIMAL_TOML + 'legacy = "gone.sql"\n')
    given = tmp_path / "elsewhere.sql"
    given.write_text("CREATE TABLE t (id int);\n")
    assert load_plan(directory, legacy=given).legacy == given
    # Its form is still the plan's to get right.
    (directory / "plan.toml").write_text(MINIMAL_TOML + "legacy = 3\n")
    with pytest.raises(PlanError, match="names the plan's legacy dump"):
        load_plan(directory, legacy=given)
