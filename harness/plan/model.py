"""A migration plan on disk: what it promises (``plan.toml``) and how (``up/``, ``down/``).

Layout of a plan directory::

    plan.toml            name, the expected layout after migration, privileges
    up/001_name.sql      steps, applied in number order, each in its own transaction
    down/001_name.sql    the rollback of each step, same numbers, applied in reverse

``plan.toml``::

    name = "shop"
    description = "..."                      # optional
    database = "shop_production"             # optional: the database name the SQL uses
                                             # (ALTER DATABASE ...); the gate's copy gets it
    legacy = "legacy.sql"                    # optional: the dump the plan is gated against
                                             # (SQL, pg_dump -Fc or -Fd), relative to this
                                             # file; --legacy overrides; default built-in

    [runner]                                 # optional; these are the defaults
    lock_timeout = "200ms"                   # per attempt: readers queue behind a waiting
                                             # DDL statement, so this is their worst stall;
                                             # autovacuum gives way only after the server's
                                             # deadlock_timeout (1s): see docs/plans.md
    statement_timeout = "60s"
    lock_retries = 20                        # further tries after a lock timeout,
    lock_budget = "15s"                      # all within this time, then exit 75

    [layout]
    schemas = ["sales", "audit"]             # must exist after migration
    roles = ["app_rw"]                       # must exist after migration
    new_tables = ["audit.audit_log"]         # tables the plan creates
    materialized_views = ["reports.catalog"] # materialized views the plan creates

    [layout.tables]                          # table before -> schema after
    "public.products" = "sales"              # a bare name means public

    [[privileges]]                           # proven by trying, as the role
    role = "app_rw"
    on = "sales"                             # a schema: USAGE, CREATE
    allow = ["USAGE"]
    deny = ["CREATE"]

    [[privileges]]
    role = "app_ro"
    on = "customers.*"                       # every table and view in the schema;
    allow = ["SELECT"]                       # or "schema.table" for one of them
    deny = ["INSERT", "UPDATE", "DELETE"]

    [sessions]                               # optional: queries the application runs,
    queries = ["SELECT customer_lifetime_value(id) FROM customers LIMIT 1"]
                                             # unqualified, besides a count(*) per table

    [workload]                               # optional: the application's traffic while
    clients = 16                             # the gate migrates, rolls back and migrates
    [[workload.queries]]                     # again; named reads and writes, each run
    name = "product_detail"                  # as one of the plan's roles, through the
    role = "app_rw"                          # PgBouncer reader (read) or writer (write)
    kind = "read"
    params = "SELECT id AS product_id FROM products LIMIT 500"
    sql = "SELECT * FROM products WHERE id = %(product_id)s"
                                             # full format: harness/plan/workload.py

    [rollback]                               # optional
    keeps_roles = ["app_rw"]                 # roles the rollback leaves on purpose (roles
                                             # are cluster-wide); reported, not a finding

    [dependencies]                           # optional
    compatibility_views = "warn"             # "fail" in the contract phase: code that
                                             # reaches a moved table only through a
                                             # compatibility view breaks when they go

    [pgbouncer.writer]                       # optional: the poolers production runs;
    pool_mode = "transaction"                # the gate starts its PgBouncers with them
    default_pool_size = 25                   # (and sizes max_connections to fit); each
    [pgbouncer.reader]                       # key left out keeps the default. Full
    pool_mode = "session"                    # format: harness/plan/pgbouncer.py

    [[data_changes]]                         # optional: rows a step changes on purpose
    step = "up/005_backfill.sql"             # (a backfill); any other row change of a
    table = "public.orders"                  # table that existed before is a finding.
                                             # Full format: harness/plan/data_changes.py
    [cluster]                                # optional
    pg_version = 17                          # the PostgreSQL production runs: the docker
                                             # provider's image (--pg-version overrides);
                                             # the local provider must have that major
    pgbouncer = "1.24"                       # the PgBouncer production runs (--pgbouncer
                                             # overrides; see harness/cluster/pgbouncer_builds.py)
    [application.writer]                     # optional: each instance's own pools (the
    min_size = 1                             # plan's dbConfig) for harness load; full
    max_size = 10                            # format: harness/plan/application.py

Names are PostgreSQL identifiers as SQL writes them: unquoted ones are folded to
lower case, ``"Quoted"`` ones are kept as written (``'"Sales"."Order"'``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster.pooling import Poolers
from harness.cluster.versions import parse_release_line
from harness.errors import PlanError
from harness.plan.application import ApplicationPools, check_against_poolers, parse_application
from harness.plan.data_changes import DataChange, parse_data_changes
from harness.plan.pgbouncer import parse_pgbouncer, refuse_statement_pooling
from harness.plan.sqltext import Statement, split_statements
from harness.plan.workload import Workload, parse_workload

__all__ = ["SCHEMA_OPS", "TABLE_OPS", "Layout", "Plan", "PrivilegeRule", "RunnerSettings", "Step",
           "load_plan", "split_name"]  # fmt: skip

SCHEMA_OPS = frozenset({"USAGE", "CREATE"})
TABLE_OPS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
_STEP_FILE = re.compile(r"^(?P<number>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
_UNQUOTED = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
# With a unit: PostgreSQL reads a bare number as milliseconds, rarely what was meant.
_DURATION = re.compile(r"^\d+(\.\d+)?\s*(ms|s|min|h)$")
_TOP_LEVEL = frozenset(
    {
        "name",
        "description",
        "database",
        "legacy",
        "runner",
        "layout",
        "privileges",
        "sessions",
        "rollback",
        "dependencies",
        "workload",
        "pgbouncer",
        "data_changes",
        "cluster",
        "application",
    }
)
_SEVERITIES = ("warn", "fail")
_RUNNER_KEYS = frozenset({"lock_timeout", "statement_timeout", "lock_retries", "lock_budget"})
# A step runs inside the runner's transaction: these would end it part way through.
_TRANSACTION_CONTROL = ("BEGIN", "START TRANSACTION", "COMMIT", "END", "ROLLBACK", "ABORT")


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    direction: str  # "up" or "down"
    path: Path
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        """How reports name a step: ``up/002_move_tables.sql``."""
        return f"{self.direction}/{self.path.name}"

    @functools.cached_property
    def statements(self) -> list[Statement]:
        """Split once: the runner asks again on every lock-timeout retry."""
        return split_statements(self.sql)

    @functools.cached_property
    def outside_transaction(self) -> str | None:
        """Why the step cannot be one transaction (``CREATE INDEX CONCURRENTLY``…), if so:
        the runner then commits each statement on its own."""
        return next(
            (why for s in self.statements if (why := s.outside_transaction) is not None), None
        )


@dataclass(frozen=True)
class PrivilegeRule:
    role: str
    on: str
    allow: frozenset[str]
    deny: frozenset[str]

    @property
    def is_schema(self) -> bool:
        return len(split_name(self.on)) == 1

    @property
    def schema(self) -> str:
        return split_name(self.on)[0]

    @property
    def relation(self) -> str | None:
        """The one table or view named, or None for a schema or ``schema.*``."""
        parts = split_name(self.on)
        return parts[1] if len(parts) == 2 and parts[1] != "*" else None


@dataclass(frozen=True)
class RunnerSettings:
    lock_timeout: str = "200ms"
    statement_timeout: str = "60s"
    lock_retries: int = 20
    lock_budget: str = "15s"


@dataclass(frozen=True)
class Layout:
    schemas: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tables: dict[str, str] = field(default_factory=dict)  # "public.products" -> "sales"
    new_tables: tuple[str, ...] = ()
    materialized_views: tuple[str, ...] = ()

    def target(self, qualified: str) -> str:
        """Where ``qualified`` (as it was before migration) must be afterwards."""
        return _joined([self.tables[qualified], split_name(qualified)[1]])


@dataclass(frozen=True)
class Plan:
    name: str
    directory: Path
    description: str
    database: str | None  # the name the plan's SQL gives its database, if it names one
    layout: Layout
    privileges: tuple[PrivilegeRule, ...]
    runner: RunnerSettings
    session_queries: tuple[str, ...]
    up: tuple[Step, ...]
    down: tuple[Step, ...]
    workload: Workload | None = None  # None: the simple case, from [sessions] queries
    keeps_roles: tuple[str, ...] = ()  # roles the rollback leaves behind on purpose
    compatibility_views: str = "warn"  # or "fail": code reaching tables only through them
    pgbouncer: Poolers | None = None  # None: the plan leaves the poolers at the defaults
    application: ApplicationPools | None = None  # None: the load config's [target] pools
    legacy: Path | None = None  # the dump it is gated against; None: the built-in database
    data_changes: tuple[DataChange, ...] = ()  # row changes steps make on purpose
    pg_version: int | None = None  # [cluster] pg_version: the PostgreSQL major it runs on
    pgbouncer_version: tuple[int, int] | None = None  # [cluster] pgbouncer: MAJOR.MINOR

    def down_for(self, number: int) -> Step:
        return next(s for s in self.down if s.number == number)

    def may_select(self, role: str, schema: str, table: str) -> bool:
        """Whether ``role``'s rules give it SELECT on ``schema.table`` and none denies it."""
        allowed = denied = False
        for rule in self.privileges:
            if rule.role != role or rule.is_schema or rule.schema != schema:
                continue
            if rule.relation not in (None, table):
                continue
            allowed |= "SELECT" in rule.allow
            denied |= "SELECT" in rule.deny
        return allowed and not denied


def _parse_name(text: str, *, fold: bool = True) -> list[str] | None:
    """The parts of a dotted SQL name, folded as PostgreSQL folds them; None if malformed."""
    parts: list[str] = []
    i = 0
    while True:
        if text.startswith('"', i):
            j, out = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    return None
                out.append(text[j:k])
                if text.startswith('"', k + 1):  # a doubled quote stands for one
                    out.append('"')
                    j = k + 2
                    continue
                break
            if not "".join(out):
                return None
            parts.append("".join(out))
            i = k + 1
        elif text.startswith("*", i):
            parts.append("*")
            i += 1
        else:
            m = _UNQUOTED.match(text, i)
            if not m:
                return None
            parts.append(m.group(0).lower() if fold else m.group(0))
            i = m.end()
        if i == len(text):
            return parts
        if not text.startswith(".", i):
            return None
        i += 1


def split_name(name: str) -> list[str]:
    """``schema.table`` as stored in a plan (catalog spelling) back into its parts.

    Names are kept as the catalog spells them, joined by dots; a part holding a dot
    itself is stored quoted.
    """
    parsed = _parse_name(name, fold=False)
    return parsed if parsed is not None else name.split(".")


def _joined(parts: list[str]) -> str:
    return ".".join(p if p == "*" or ("." not in p and '"' not in p) else _quoted(p) for p in parts)


def _quoted(part: str) -> str:
    return '"' + part.replace('"', '""') + '"'


def _qualify(name: str, *, where: str) -> str:
    parts = _parse_name(name)
    if parts is not None and len(parts) == 1:
        parts = ["public", *parts]
    if parts is None or len(parts) != 2 or "*" in parts:
        raise PlanError(
            f"{where}: {name!r} is not a table name; write schema.table (for example "
            'public.products, or "Sales"."Order" for names with capitals)'
        )
    return _joined(parts)


def _ident(name: object, *, where: str) -> str:
    parts = _parse_name(name) if isinstance(name, str) else None
    if parts is None or len(parts) != 1 or parts == ["*"]:
        raise PlanError(
            f"{where}: {name!r} is not an SQL identifier (quote one with capitals: '\"Sales\"')"
        )
    return parts[0]


def _str_list(value: object, *, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanError(f"{where} must be a list of strings, got {value!r}")
    return list(value)


def _read_steps(directory: Path, direction: str) -> dict[int, Step]:
    folder = directory / direction
    if not folder.is_dir():
        raise PlanError(f"{folder}: missing; a plan has {direction}/NNN_name.sql step files")
    steps: dict[int, Step] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        m = _STEP_FILE.match(path.name)
        if not m:
            raise PlanError(
                f"{path}: step files are named NNN_name.sql (for example 001_create_schemas.sql)"
            )
        number = int(m["number"])
        if number in steps:
            raise PlanError(
                f"{path}: step number {number} is used twice in {direction}/, also by "
                f"{steps[number].path.name}; give each step its own number"
            )
        raw = path.read_bytes()
        try:
            sql = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlanError(f"{path}: not UTF-8 text ({exc})") from None
        step = Step(number, m["name"], direction, path, sql, hashlib.sha256(raw).hexdigest())
        for statement in step.statements:
            words = statement.first_words
            if any(words == tc or words.startswith(tc + " ") for tc in _TRANSACTION_CONTROL):
                raise PlanError(
                    f"{step.label} line {statement.line}: {words.split()[0]} — each step runs "
                    "in its own transaction, which the runner begins and commits; remove "
                    "transaction control from the step"
                )
        steps[number] = step
    return steps


def _privileges(raw: object, *, toml_path: Path) -> tuple[PrivilegeRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PlanError(f"{toml_path}: [[privileges]] must be an array of tables")
    rules = []
    for i, entry in enumerate(raw, 1):
        where = f"{toml_path}: [[privileges]] #{i}"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be a table with role, on, allow, deny")
        unknown = set(entry) - {"role", "on", "allow", "deny"}
        if unknown:
            raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        role = _ident(entry.get("role"), where=f"{where} role")
        on = entry.get("on")
        parts = _parse_name(on) if isinstance(on, str) else None  # fold: SQL spelling
        if parts is None or not 1 <= len(parts) <= 2 or parts[0] == "*":
            raise PlanError(f"{where}: on = {on!r}; name a schema, schema.* or schema.table")
        on = _joined(parts)
        allow = frozenset(o.upper() for o in _str_list(entry.get("allow", []), where=where))
        deny = frozenset(o.upper() for o in _str_list(entry.get("deny", []), where=where))
        valid = SCHEMA_OPS if len(parts) == 1 else TABLE_OPS
        bad = (allow | deny) - valid
        if bad:
            raise PlanError(
                f"{where}: {', '.join(sorted(bad))} cannot be tried on {on!r}; "
                f"choose from {', '.join(sorted(valid))}"
            )
        if allow & deny:
            raise PlanError(f"{where}: {', '.join(sorted(allow & deny))} both allowed and denied")
        rules.append(PrivilegeRule(role, on, allow, deny))
    return tuple(rules)


def _table(doc: dict[str, Any], key: str, *, toml_path: Path) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise PlanError(f"{toml_path}: [{key}] must be a table")
    return value


def load_plan(directory: str | Path, *, legacy: Path | None = None) -> Plan:
    """Read and validate a plan directory; every problem names its file.

    ``legacy``: a dump named on the command line (``--legacy``). It wins over the
    plan's own ``legacy =``, which then need not exist: a plan copied without its
    dump, or whose dump lives elsewhere on this machine, is still gated.
    """
    directory = Path(directory)
    toml_path = directory / "plan.toml"
    if not toml_path.is_file():
        raise PlanError(f"{toml_path}: missing; a plan directory holds plan.toml, up/ and down/")
    try:
        doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{toml_path}: not valid TOML: {exc}") from None
    unknown = set(doc) - _TOP_LEVEL
    if unknown:
        raise PlanError(
            f"{toml_path}: unknown key(s) {', '.join(sorted(unknown))}; a plan has "
            f"{', '.join(sorted(_TOP_LEVEL))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise PlanError(f'{toml_path}: needs name = "..."')

    layout_doc = _table(doc, "layout", toml_path=toml_path)
    tables_doc = layout_doc.get("tables", {})
    if not isinstance(tables_doc, dict):
        raise PlanError(f'{toml_path}: [layout.tables] maps table = "schema"')
    tables = {
        _qualify(t, where=f"{toml_path} [layout.tables]"): _ident(s, where=f"[layout.tables] {t}")
        for t, s in tables_doc.items()
    }
    layout = Layout(
        schemas=tuple(
            _ident(s, where="[layout] schemas")
            for s in _str_list(layout_doc.get("schemas", []), where="[layout] schemas")
        ),
        roles=tuple(
            _ident(r, where="[layout] roles")
            for r in _str_list(layout_doc.get("roles", []), where="[layout] roles")
        ),
        tables=tables,
        new_tables=tuple(
            _qualify(t, where="[layout] new_tables")
            for t in _str_list(layout_doc.get("new_tables", []), where="[layout] new_tables")
        ),
        materialized_views=tuple(
            _qualify(t, where="[layout] materialized_views")
            for t in _str_list(
                layout_doc.get("materialized_views", []), where="[layout] materialized_views"
            )
        ),
    )
    runner_doc = _table(doc, "runner", toml_path=toml_path)
    unknown = set(runner_doc) - _RUNNER_KEYS
    if unknown:
        raise PlanError(
            f"{toml_path}: [runner] has unknown key(s) {', '.join(sorted(unknown))}; "
            f"the known ones are {', '.join(sorted(_RUNNER_KEYS))}"
        )
    runner = RunnerSettings(**runner_doc)
    for key in ("lock_timeout", "statement_timeout", "lock_budget"):
        value = getattr(runner, key)
        if not isinstance(value, str) or not _DURATION.match(value):
            raise PlanError(
                f"{toml_path}: [runner] {key} must be a duration with a unit, "
                f'like "2s" or "500ms", not {value!r}'
            )
    retries = runner.lock_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise PlanError(f"{toml_path}: [runner] lock_retries must be a whole number 0..20")

    up = _read_steps(directory, "up")
    down = _read_steps(directory, "down")
    if not up:
        raise PlanError(f"{directory / 'up'}: no steps; add up/001_name.sql")
    for number, step in up.items():
        if number not in down:
            raise PlanError(
                f"{step.label} has no rollback: add down/{step.path.name} "
                "(an empty file with a comment if the step needs none)"
            )
    for number, step in down.items():
        if number not in up:
            raise PlanError(f"{step.label} rolls back a step that up/ does not have")
    sessions = _table(doc, "sessions", toml_path=toml_path)
    rollback = _table(doc, "rollback", toml_path=toml_path)
    dependencies = _table(doc, "dependencies", toml_path=toml_path)
    severity = dependencies.get("compatibility_views", "warn")
    if severity not in _SEVERITIES:
        raise PlanError(
            f'{toml_path}: [dependencies] compatibility_views = {severity!r}; use "warn" '
            '(expand phase, the default) or "fail" (contract phase)'
        )
    workload = parse_workload(doc.get("workload"), toml_path=toml_path, roles=layout.roles)
    pgbouncer = parse_pgbouncer(doc.get("pgbouncer"), toml_path=toml_path)
    refuse_statement_pooling(pgbouncer, workload, toml_path=toml_path)
    cluster = _table(doc, "cluster", toml_path=toml_path)
    if set(cluster) - {"pg_version", "pgbouncer"}:
        raise PlanError(f"{toml_path}: [cluster] has pg_version and pgbouncer only")
    pg_version = cluster.get("pg_version")
    if pg_version is not None and (isinstance(pg_version, bool) or not isinstance(pg_version, int)):
        raise PlanError(f"{toml_path}: [cluster] pg_version is a PostgreSQL major, like 17")
    bouncer = cluster.get("pgbouncer")
    release_line = parse_release_line(bouncer) if isinstance(bouncer, str) else None
    if bouncer is not None and release_line is None:
        raise PlanError(
            f'{toml_path}: [cluster] pgbouncer is a PgBouncer MAJOR.MINOR string, like "1.24"'
        )
    application = parse_application(doc.get("application"), toml_path=toml_path)
    check_against_poolers(application, pgbouncer, toml_path=toml_path)
    return Plan(
        name=name,
        directory=directory,
        description=str(doc.get("description", "")),
        database=_ident(doc["database"], where=f"{toml_path} database")
        if "database" in doc
        else None,
        layout=layout,
        privileges=_privileges(doc.get("privileges"), toml_path=toml_path),
        runner=runner,
        session_queries=tuple(_str_list(sessions.get("queries", []), where="[sessions] queries")),
        up=tuple(up[n] for n in sorted(up)),
        down=tuple(down[n] for n in sorted(down)),
        workload=workload,
        keeps_roles=tuple(
            _ident(r, where="[rollback] keeps_roles")
            for r in _str_list(rollback.get("keeps_roles", []), where="[rollback] keeps_roles")
        ),
        compatibility_views=str(severity),
        pgbouncer=pgbouncer,
        application=application,
        legacy=_legacy(doc.get("legacy"), directory=directory, toml_path=toml_path, given=legacy),
        data_changes=parse_data_changes(
            doc.get("data_changes"),
            toml_path=toml_path,
            steps={s.label for s in (*up.values(), *down.values())},
            qualify=_qualify,
        ),
        pg_version=pg_version,
        pgbouncer_version=release_line,
    )


def _legacy(value: object, *, directory: Path, toml_path: Path, given: Path | None) -> Path | None:
    """The plan's own legacy database, relative to its directory: it travels with the plan.

    ``given`` (the command line's) wins: the plan's is then checked for its form only.
    """
    if value is None:
        return given
    if not isinstance(value, str) or not value:
        raise PlanError(f'{toml_path}: legacy = "dump.sql" names the plan\'s legacy dump')
    path = directory / value
    if given is not None:
        return given
    if not path.exists():
        raise PlanError(
            f"{toml_path}: legacy = {value!r}: no {path}; give a plain SQL dump, a pg_dump "
            "-Fc file or a -Fd directory, relative to the plan's directory"
        )
    return path
