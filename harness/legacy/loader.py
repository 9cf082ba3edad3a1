"""Putting the legacy database into an empty database: built in, or the user's own dump.

The built-in database is the schema in ``schema.sql`` and the rows of
:mod:`harness.legacy.data`, loaded over one connection in one transaction, so a
failure leaves the target as empty as it was. A user's dump goes through the
programs made for it (``psql`` for plain SQL, ``pg_restore`` for archives), also
in a single transaction each.

Seeding only ever goes into an empty database: loading over existing tables
would either fail halfway through or, worse, mix two data sets silently.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from harness import phases
from harness.cluster.binaries import PgBinaries, client_binaries, find_binaries
from harness.connections import Conn, connect, connect_primary
from harness.dsn import child_env, redact
from harness.errors import HarnessError, InfrastructureError, UsageError
from harness.legacy.bulk import advance_sequences, bulk_load, checkpoint, drop_created, objects
from harness.legacy.data import LEGACY_COUNTS, counts, generate
from harness.progress import Progress, quiet
from harness.runner.backup import PARALLEL_PASSES, restore_jobs

__all__ = ["SeedReport", "seed"]


_POST_DATA_MARKER = "-- pgcutover:post-data"
_STDERR_LINES = 15
# Relation kinds that make a database "not empty": tables, partitioned tables, views,
# materialized views, foreign tables. Schemas named pg_* are the system's: the
# catalog, TOAST, and other sessions' temporary tables.
_USER_RELATIONS = """
    SELECT format('%I.%I', n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
     ORDER BY 1
"""
_USER_TABLES = """
    SELECT c.oid::regclass::text
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
     ORDER BY 1
"""


@dataclass(frozen=True)
class SeedReport:
    """What was loaded: rows per table (named as ``regclass`` prints them), and how long it took."""

    database: str
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: COPY text sent for the built-in database; the dump's size for a dump
    bytes: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        return (
            f"seeded {self.database} from {self.source}: {self.total_rows:,} rows "
            f"in {len(self.rows)} tables in {self.seconds:.2f} s"
        )


def seed(
    dsn: str,
    *,
    scale: int = 1,
    legacy: Path | None = None,
    pg_bin: PgBinaries | None = None,
    progress: Progress | None = None,
    create_roles: bool = False,
    bulk: bool = True,
) -> SeedReport:
    """Load the legacy database into the empty database at ``dsn``.

    With ``legacy`` unset, the built-in schema and ``scale`` times the plan's
    row counts; with it, that plain SQL dump or ``pg_dump`` archive (``scale``
    is then ignored). Raises :class:`UsageError` for input that cannot be used
    and :class:`InfrastructureError` for a server or program that does not work.

    ``create_roles``: a dump of one database names roles (owners, grantees) that
    live in its cluster, not in the dump; on a cluster the harness set up for
    the run, each such role is created (NOLOGIN) and the load tried again, so the
    database keeps its owners and grants as dumped.

    ``bulk``: load the built-in database as :mod:`harness.legacy.bulk` does (keys
    and indexes built beside the copy, on several sessions, frozen rows, vacuumed);
    False loads it in one transaction over one session, the slow reference the
    bulk load is compared with.
    """
    say: Progress = progress or quiet
    started = time.perf_counter()
    nbytes = 0
    # The input is checked before connecting: its mistakes are the caller's, whatever the server.
    total = sum(counts(scale=scale).values()) if legacy is None else 0
    kind = _dump_kind(legacy) if legacy is not None else "built-in"
    timeout = float(conninfo_to_dict(dsn).get("connect_timeout") or 10)
    fix = "seed the primary's database instead; the standby receives the rows by replication"
    with connect_primary(dsn, timeout=timeout, fix=fix) as conn:
        database, user = conn.info.dbname, conn.info.user
        try:
            _refuse_non_empty(conn, dsn=dsn)
            if legacy is None:
                source = f"the built-in legacy database at scale {scale}"
                say(f"seeding {database} with {source} ({total:,} rows)")
                if bulk:
                    pre_data, post_data = _schema_sections()
                    volume = bulk_load(
                        dsn, pre_data=pre_data, post_data=post_data, scale=scale, say=say
                    )
                    nbytes = sum(volume.bytes.values())
                else:
                    _load_builtin(conn, scale=scale, say=say)
            else:
                source = str(legacy)
                say(f"loading {legacy} ({kind}) into {database}")
                created = _load_dump(
                    dsn,
                    legacy,
                    kind=kind,
                    database=database,
                    pg_bin=pg_bin,
                    create_roles=create_roles,
                )
                if created:
                    say(
                        f"the dump names roles the server lacked: created {', '.join(created)} "
                        "(NOLOGIN), so that it loads with its owners and grants"
                    )
                # As after the built-in load: nothing left for autovacuum, nothing to flush.
                say(f"vacuuming and analyzing {database}")
                conn.execute("VACUUM (ANALYZE)")
                checkpoint(conn, say=say)
                nbytes = _size(legacy)
            rows = _count_rows(conn)
        except psycopg.Error as exc:
            raise _failure(exc, database=database, user=user) from None
    if not rows:
        raise UsageError(
            f"loading {source} into {database} created no tables; pass a dump that holds "
            "the legacy schema and its data (pg_dump without --data-only)"
        )
    report = SeedReport(
        database=database,
        source=source,
        rows=rows,
        seconds=time.perf_counter() - started,
        bytes=nbytes,
    )
    phases.note(rows=report.total_rows, nbytes=report.bytes)
    say(report.summary())
    return report


def _refuse_non_empty(conn: Conn, *, dsn: str) -> None:
    found = [str(r[0]) for r in conn.execute(_USER_RELATIONS).fetchall()]
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        name = conn.info.dbname
        raise UsageError(
            f"database {name} ({redact(dsn)}) is not empty: it already holds {shown}; "
            f"seed into a new, empty database (DROP DATABASE {name}; CREATE DATABASE {name}; "
            "or pick another name)"
        )


def _schema_sections() -> tuple[str, str]:
    text = resources.files("harness.legacy").joinpath("schema.sql").read_text(encoding="utf-8")
    pre_data, marker, post_data = text.partition(_POST_DATA_MARKER)
    if not marker:
        raise AssertionError(f"schema.sql lacks its {_POST_DATA_MARKER!r} line")
    return pre_data, post_data


def _load_builtin(conn: Conn, *, scale: int, say: Progress) -> None:
    pre_data, post_data = _schema_sections()
    with conn.transaction(), conn.cursor() as cur:
        # The legacy database is "everything in public"; a search_path set on the
        # role or database must not scatter the tables over other schemas.
        cur.execute("SET LOCAL search_path = public")
        # Room to sort index keys and to hash the joins that check each new
        # foreign key in memory: the defaults (64MB, 4MB) spill to disk at scale 100.
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cur.execute("SET LOCAL work_mem = '64MB'")
        say("creating tables, types and functions")
        cur.execute(pre_data.encode())
        for table in generate(scale=scale):
            say(f"copying {table.rows:,} rows into {table.table}")
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.table),
                sql.SQL(", ").join(map(sql.Identifier, table.columns)),
            )
            with cur.copy(copy_sql) as copy:
                for chunk in table.chunks:
                    copy.write(chunk)
        say("adding keys, indexes, triggers, functions and views")
        cur.execute(post_data.encode())
        advance_sequences(cur)
        say("analyzing")
        cur.execute("ANALYZE")


def _failure(exc: psycopg.Error, *, database: str, user: str) -> HarnessError:
    """The harness error for a statement the server refused while seeding."""
    detail = redact(" ".join(str(exc).split()))
    if exc.sqlstate == "42501":
        # PostgreSQL 15 took CREATE on schema public away from PUBLIC: only the
        # database owner, or a role granted it, may create the legacy tables there.
        return UsageError(
            f"role {user} may not create the legacy tables in {database}: {detail}; connect "
            f"as the database owner or GRANT CREATE ON SCHEMA public TO {user}"
        )
    if exc.sqlstate in ("42P07", "42710", "42723"):  # duplicate table, object, function
        return UsageError(
            f"{database} already holds an object the legacy schema creates: {detail}; "
            "seed into a new, empty database"
        )
    return InfrastructureError(
        f"seeding {database} failed and was rolled back: {detail}; "
        "check that the server is up and look at its log (disk space, memory)"
    )


def _count_rows(conn: Conn) -> dict[str, int]:
    """Exact rows per table (a partitioned table counts its partitions), the plan's order first."""
    rows: dict[str, int] = {}
    for (table,) in conn.execute(_USER_TABLES).fetchall():
        # ``table`` is regclass output, already quoted where it needs to be.
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(str(table)))
        result = conn.execute(query).fetchone()
        rows[str(table)] = int(str(result[0])) if result else 0
    order = {table: i for i, table in enumerate(LEGACY_COUNTS)}
    return dict(sorted(rows.items(), key=lambda item: order.get(item[0], len(order))))


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def _dump_kind(path: Path) -> str:
    """'plain SQL', 'custom archive', 'tar archive' or 'directory archive', from the bytes."""
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return "directory archive"
        raise UsageError(
            f"legacy dump {path} is a directory without toc.dat, so not a pg_dump -Fd "
            "archive; pass a plain SQL file, a custom archive (pg_dump -Fc) or an archive directory"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except FileNotFoundError:
        raise UsageError(
            f"legacy dump {path} does not exist; pass the path of a plain SQL dump "
            "(pg_dump -Fp) or a custom archive (pg_dump -Fc)"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read legacy dump {path}: {exc.strerror}; fix its permissions"
        ) from None
    if head.startswith(b"PGDMP"):
        return "custom archive"
    if head[257:262] == b"ustar":
        return "tar archive"
    if head.startswith(b"\x1f\x8b"):
        raise UsageError(
            f"legacy dump {path} is gzip-compressed; gunzip it first, or pass a custom "
            "archive (pg_dump -Fc), which pg_restore decompresses itself"
        )
    if not head.strip():
        raise UsageError(f"legacy dump {path} is empty; pass a dump that creates the legacy tables")
    # Text in any server encoding (UTF8, LATIN1, ...) is welcome; a NUL byte never is.
    if b"\x00" in head:
        raise UsageError(
            f"legacy dump {path} is neither SQL text nor a pg_dump archive (it starts with "
            f"{head[:8]!r}); pass a plain SQL dump (pg_dump -Fp) or a custom archive (pg_dump -Fc)"
        )
    return "plain SQL"


# pg_restore -j reads the parts of these out of order; a tar archive or a plain dump,
# only front to back.
_PARALLEL_KINDS = ("custom archive", "directory archive")
# A dump names a handful of roles at most; past this many, something else is wrong.
_MAX_ROLES = 32
_MISSING_ROLE = re.compile(r'role "(.+?)" does not exist')


def _load_dump(
    dsn: str,
    path: Path,
    *,
    kind: str,
    database: str,
    pg_bin: PgBinaries | None,
    create_roles: bool,
) -> list[str]:
    """Load ``path``; the roles created for it (see :func:`seed`)."""
    created: list[str] = []
    with connect(dsn) as conn:
        before = objects(conn)
    while True:
        failure = _try_load(dsn, path, kind=kind, pg_bin=pg_bin, owners=create_roles)
        if failure is None:
            return created
        if kind in _PARALLEL_KINDS:
            # pg_restore -j cannot run as one transaction: what it restored goes again here.
            drop_created(dsn, before=before)
        missing = _MISSING_ROLE.search(failure[1])
        role = missing.group(1) if missing is not None else None
        # A role created and still missing is not ours to mend.
        if not create_roles or role is None or role in created or len(created) >= _MAX_ROLES:
            raise _load_failed(path, kind=kind, database=database, failure=failure)
        with connect(dsn) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        created.append(role)


def _try_load(
    dsn: str, path: Path, *, kind: str, pg_bin: PgBinaries | None, owners: bool
) -> tuple[int, str] | None:
    """psql or pg_restore, in one transaction: None when it loaded, else its exit code
    and error output. An archive keeps its owners only with ``owners`` (where the
    roles they name can be made); a plain dump's ``OWNER TO`` lines always run."""
    # pg_restore must be as new as the archive's pg_dump; psql reads any plain SQL.
    bins = pg_bin or (find_binaries() if kind == "plain SQL" else client_binaries())
    conninfo, env = child_env(dsn)
    # -w: never prompt for a password; nobody is there to answer, the run would hang.
    if kind == "plain SQL":
        argv = [bins.path("psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", "-d", conninfo, "-f", str(path)]  # fmt: skip
    else:
        # An archive whose parts can be read out of order loads like pg_restore -j does:
        # tables side by side, each index built once its table is in.
        parallel = kind in _PARALLEL_KINDS
        at_once = ["-j", str(restore_jobs())] if parallel else ["--single-transaction"]
        argv = [bins.path("pg_restore"), "-w", *([] if owners else ["--no-owner"]),
                "--exit-on-error", *at_once, "-d", conninfo]  # fmt: skip
        passes = PARALLEL_PASSES if parallel else ((),)
        return _run_passes([[*argv, *sections, str(path)] for sections in passes], env=env)
    return _run_passes([argv], env=env)


def _run_passes(passes: list[list[str]], *, env: dict[str, str]) -> tuple[int, str] | None:
    """Each command in turn, stopping at the first that fails: its exit code and errors."""
    for argv in passes:
        try:
            done = subprocess.run(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
            )
        except OSError as exc:
            raise InfrastructureError(
                f"cannot run {argv[0]}: {exc.strerror}; install the PostgreSQL client programs "
                "or pass --pg-bin DIR"
            ) from None
        if done.returncode != 0:
            return done.returncode, redact(done.stderr.decode("utf-8", "replace"))
    return None


def _untangled(lines: list[str], *, prefix: str) -> list[str]:
    """pg_restore -j's workers share one stderr and write a message's prefix apart from
    its text, so one worker's prefix can land before another's whole line
    (``pg_restore:pg_restore: error: …``) and its text on the next line (`` error: …``).
    Each stray prefix goes back to the next line that starts without one."""
    out = []
    stray = 0
    for line in lines:
        while line.startswith(prefix + prefix):
            line = line[len(prefix) :]
            stray += 1
        if stray and line.startswith(" "):
            line = prefix + line
            stray -= 1
        out.append(line)
    return out


def _load_failed(path: Path, *, kind: str, database: str, failure: tuple[int, str]) -> UsageError:
    code, stderr = failure
    program = "psql" if kind == "plain SQL" else "pg_restore"
    lines = _untangled(stderr.strip().splitlines(), prefix=f"{program}:")[-_STDERR_LINES:]
    # The cut may fall in a message of several lines: start at the first whole one.
    whole = [i for i, line in enumerate(lines) if line.startswith(f"{program}: ")]
    tail = "\n".join(lines[whole[0] if whole else 0 :]) or "(no error output)"
    return UsageError(
        f"loading {path} into {database} failed: {program} exited with {code} and rolled "
        f"back, the database is still empty; {_hint(stderr)}\n"
        f"--- last lines from {program} ---\n{tail}"
    )


def _hint(stderr: str) -> str:
    """The fix for the failures dumps from another server commonly meet."""
    if "unrecognized configuration parameter" in stderr:
        # pg_dump 17 writes `SET transaction_timeout`, which a 15 or 16 server rejects.
        return (
            "the dump was made by a newer pg_dump than this server; "
            "dump again with the pg_dump of the server's version"
        )
    if "cannot run inside a transaction block" in stderr:
        return (
            "the dump creates or switches databases (pg_dump --create, or pg_dumpall); "
            "dump the one database with pg_dump, without --create"
        )
    if "role" in stderr and "does not exist" in stderr:
        return (
            "the dump names roles this server lacks; create them first (harness gate and "
            "harness up create them on the servers they start) or dump again with "
            "--no-owner --no-privileges"
        )
    return "fix the statement named below, or make the dump again with pg_dump"
