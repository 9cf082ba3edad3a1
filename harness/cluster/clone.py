"""The gate's primary as a physical copy of a server the user names (``--clone-from``).

A dump and restore of a database of gigabytes rebuilds every index and takes
longer the larger it is; ``pg_basebackup`` copies the files as they are, at the
speed of the disk and the network. The copy becomes the local provider's primary
(in the harness's directory, on a loopback port of its own, with the harness's
settings), its streaming replica and PgBouncers follow as for any local cluster,
and the gate skips the load: the copy already holds the database.

The source is only read. Copied from a *standby*, nothing at all is written to it or
to its primary: a base backup of a standby takes a restartpoint of what it has
replayed and writes no WAL. Copied from a *primary*, pg_basebackup makes it
checkpoint and writes the backup's start and end records into its WAL (its data
is not changed); that is allowed, and said in the progress and in ``gate.json``
(``clone.source_role``), so nobody mistakes it for the quiet kind.

Everything wrong with the source is found before any server starts, each with its
cause and fix: a source that does not answer, of another major than the local
binaries, a role without REPLICATION, a database that is not there, tablespaces
outside the data directory, a disk without room for the copy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness import phases
from harness.cluster.binaries import PgBinaries, find_binaries
from harness.cluster.processes import free_port, give_to_server_user, run_as_owner
from harness.cluster.versions import parse_version
from harness.connections import connect
from harness.dsn import child_env, redact
from harness.errors import ClusterStartError, ConnectionFailed, InfrastructureError, UsageError
from harness.progress import Progress, quiet

if TYPE_CHECKING:
    from harness.cluster.local import LocalCluster
    from harness.plan import Plan

__all__ = [
    "ENV_MAX_RATE",
    "CloneSource",
    "add_clone_option",
    "clone_for",
    "clone_from_args",
    "gated_database",
    "inspect_source",
    "refuse_provider",
]

#: Throttles the copy's read on the source (pg_basebackup --max-rate: "32k", "100M"),
#: for a source that serves others while it is copied.
ENV_MAX_RATE = "PGCUTOVER_CLONE_MAX_RATE"

# The source's server-wide settings the clone keeps: the room its data needs (a lock table
# sized for its partitions, its prepared transactions) and what changes how its SQL reads
# (time zone, date style, search_path). The rest (ports, paths, replication, archiving,
# TLS, preloaded libraries) belongs to the source's machine and is set aside. Settings
# made per database or per role are in the copied catalog and come along by themselves.
CARRIED_SETTINGS = (
    "max_locks_per_transaction",
    "max_pred_locks_per_transaction",
    "max_prepared_transactions",
    "timezone",
    "datestyle",
    "intervalstyle",
    "default_text_search_config",
    "search_path",
    "default_transaction_isolation",
)
SOURCE_SETTINGS_FILE = "pgcutover-source.conf"
# Configuration files a copy brings that would make it the source's standby, or point it
# at the source's ports, paths and certificates: moved out of the data directory to
# source-config/ beside it, where an operator can still read them.
_SET_ASIDE = (
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    "standby.signal",
    "recovery.signal",
)
_HBA = """\
# written by pgcutover: the clone is the harness's own, reached on loopback only
local all all trust
host all all 127.0.0.1/32 trust
local replication all trust
host replication all 127.0.0.1/32 trust
"""
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.$-]+")
# A copy under write load replays what was written while it was copied before it opens.
_RECOVERY_TIMEOUT = 3600.0
_NO_REPLICATION_FIX = (
    "check that the source's pg_hba.conf has a 'replication' line for this role and host, "
    "that max_wal_senders leaves two free (pg_basebackup streams the WAL beside the files), "
    "and that the DSN names the server itself, not a pooler"
)

_INSPECT = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       pg_is_in_recovery(),
       (SELECT rolname FROM pg_roles WHERE oid = 10),
       current_user,
       (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)
"""
_DATABASES = """
SELECT datname,
       CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END
  FROM pg_database ORDER BY datname
"""
_TABLESPACES = """
SELECT spcname, pg_tablespace_location(oid)
  FROM pg_tablespace WHERE pg_tablespace_location(oid) LIKE '/%' ORDER BY 1
"""
_SETTINGS = """
SELECT lower(name), setting FROM pg_settings
 WHERE lower(name) = ANY(%s)
   AND source IN ('configuration file', 'command line', 'environment variable')
 ORDER BY 1
"""


@dataclass(frozen=True)
class CloneSource:
    """A server checked fit to be copied, and how the copy becomes the gate's primary."""

    dsn: str
    database: str  # the database the gate gates, present on the source
    standby: bool
    version: str  # the source's server_version
    superuser: str  # the source's bootstrap superuser, who can log in to the copy at once
    cluster_bytes: int  # every database the copy holds
    database_bytes: int
    settings: tuple[tuple[str, str], ...] = ()
    max_rate: str | None = None

    @property
    def role(self) -> str:
        return "standby" if self.standby else "primary"

    def to_json(self) -> dict[str, object]:
        """``gate.json``'s ``clone``: what was copied, and whether the source wrote for it."""
        return {
            "source": redact(self.dsn),
            "source_role": self.role,
            "database": self.database,
            "postgresql": self.version,
            "bytes": self.cluster_bytes,
            "source_wal_written": not self.standby,
        }

    # -- the copy ------------------------------------------------------------------------
    def start_primary(self, cluster: LocalCluster, *, progress: Progress = quiet) -> int:
        """Copy the source into the cluster's primary directory and start it; its port.

        Called by :meth:`LocalCluster.start` in place of initdb; what follows (the
        replica, PgBouncer) is the same as for any local cluster.
        """
        datadir = cluster.workdir / "primary"
        phases.begin("clone")
        started = time.perf_counter()
        self._copy(cluster.bins, datadir, progress=progress)
        self._make_primary(datadir, aside=cluster.workdir / "source-config")
        copied = _bytes_under(datadir)
        progress(
            f"copied {copied / 1e6:,.0f} MB from the source's {self.role} in "
            f"{time.perf_counter() - started:.1f} sec"
        )
        port = free_port()
        progress(
            f"starting the clone as the primary on 127.0.0.1:{port}: it replays the WAL "
            "written during the copy, then opens"
        )
        cluster.primary = cluster._server("primary", port=port)
        # Any name a source's superuser may have, not only those a URL can carry.
        as_superuser = make_conninfo(
            host="127.0.0.1", port=port, user=self.superuser, dbname=self.database
        )
        cluster.primary.wait_ready(_opened(as_superuser), timeout=_RECOVERY_TIMEOUT)
        _harness_login(as_superuser, progress=progress)
        phases.note(nbytes=copied)
        phases.begin("start replica")
        return port

    def _copy(self, bins: PgBinaries, datadir: Path, *, progress: Progress) -> None:
        conninfo, env = child_env(self.dsn)
        rate = ["--max-rate", self.max_rate] if self.max_rate else []
        progress(
            f"pg_basebackup: copying the source's {self.role} ({self.cluster_bytes / 1e6:,.0f} MB"
            f" of databases){' at most ' + self.max_rate + '/s' if self.max_rate else ''}"
        )
        try:
            run_as_owner(
                [
                    bins.path("pg_basebackup"),
                    "-d", conninfo,
                    "-D", str(datadir),
                    "-X", "stream", "-c", "fast", "--no-sync", "--no-manifest",
                    "--label", "pgcutover clone",
                    *rate,
                ],
                what="pg_basebackup of the source",
                timeout=None,
                env=env,
            )  # fmt: skip
        except ClusterStartError as exc:
            raise _copy_failed(self, exc) from None

    def _make_primary(self, datadir: Path, *, aside: Path) -> None:
        """A primary of its own: no standby.signal, no primary_conninfo, the harness's files.

        pg_basebackup copies postgresql.auto.conf (where ``pg_basebackup -R`` and ALTER
        SYSTEM put primary_conninfo, and which overrides every other file) and, from a
        standby, standby.signal; started with them the copy would follow the source.
        Without them and with its backup_label it recovers to the end of the copied WAL
        and opens as a primary on the source's timeline.
        """
        aside.mkdir(exist_ok=True)
        for name in _SET_ASIDE:
            path = datadir / name
            if path.exists():
                shutil.move(str(path), aside / name)
        settings = "".join(f"{key} = {_quote(value)}\n" for key, value in self.settings)
        files = {
            SOURCE_SETTINGS_FILE: "# written by pgcutover: the source's settings the clone "
            "keeps (the rest is in source-config/ beside the data directory)\n" + settings,
            # write_settings (local.py) adds the harness's own after this, so they win.
            "postgresql.conf": f"include '{SOURCE_SETTINGS_FILE}'\n",
            "postgresql.auto.conf": "# Do not edit this file manually!\n"
            "# It will be overwritten by the ALTER SYSTEM command.\n",
            "pg_hba.conf": _HBA,
            "pg_ident.conf": "",
        }
        for name, text in files.items():
            path = datadir / name
            path.write_text(text)
            path.chmod(0o600)
            give_to_server_user(path)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _bytes_under(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def _opened(dsn: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with connect(dsn, timeout=2) as conn:
                row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError:
            return False
        return bool(row and row[0])

    return probe


def _harness_login(as_superuser: str, *, progress: Progress) -> None:
    """The harness logs in to its servers as ``postgres``: a source whose superuser is
    called otherwise (or whose ``postgres`` is no superuser) gets one in the copy only."""
    with connect(as_superuser, timeout=5) as conn:
        row = conn.execute(
            "SELECT rolsuper AND rolcanlogin AND rolreplication FROM pg_roles "
            "WHERE rolname = 'postgres'"
        ).fetchone()
        if row is not None and row[0]:
            return
        verb = "CREATE" if row is None else "ALTER"
        conn.execute(f"{verb} ROLE postgres SUPERUSER LOGIN REPLICATION")
        progress(
            f"the copy's role postgres, which the harness logs in as, was "
            f"{'missing' if row is None else 'no superuser'}: {verb} ROLE in the copy only"
        )


def _copy_failed(source: CloneSource, exc: ClusterStartError) -> UsageError | InfrastructureError:
    """pg_basebackup's refusals that the source's operator can fix, named as such."""
    tail = exc.log_tail
    where = redact(source.dsn)
    if "full_page_writes" in tail:
        return UsageError(
            f"the standby {where} cannot be copied: its primary ran with full_page_writes=off "
            "since the standby's last restartpoint, so a copy of it could be torn; set "
            "full_page_writes = on on the primary, run CHECKPOINT there, and run again once "
            "the standby has replayed it (or clone the primary)"
        )
    if "max_wal_senders" in tail or "replication slot" in tail:
        return UsageError(
            f"pg_basebackup could not stream from {where}: {_last_line(tail)}; raise "
            "max_wal_senders on the source (the copy needs two) or wait for a free one"
        )
    if "No space left on device" in tail:
        return UsageError(
            f"the copy of {where} filled the disk: {_last_line(tail)}; set PGCUTOVER_TMPDIR "
            "to a directory on a disk with room"
        )
    return InfrastructureError(
        f"pg_basebackup of {where} failed: {_last_line(tail)}; fix what it says and run "
        f"again\n--- last lines of pg_basebackup ---\n{tail}"
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0].removeprefix("pg_basebackup: error: ")


# -- checking the source, before anything starts ----------------------------------------
def refuse_provider(provider: str) -> None:
    """Only the local provider can start a server from files copied to this machine."""
    why = {
        "docker": "starts each server in a container from its image, and a copy of your "
        "server's files taken here is not what its containers start from",
        "external": "runs against servers someone else started, and copies nothing into them",
    }
    if provider != "local":
        raise UsageError(
            f"--clone-from works with the local provider only: the {provider} provider "
            f"{why.get(provider, 'starts no server from a copy')}; run with --provider local "
            "(the default), or drop --clone-from and give a dump with --legacy"
        )


def gated_database(dsn: str, plan_database: str | None) -> str:
    """The plan's ``database``, else the one the DSN names: it must be said, never guessed."""
    named = plan_database or conninfo_to_dict(dsn).get("dbname")
    if not named:
        raise UsageError(
            f"--clone-from {redact(dsn)} names no database and the plan names none; name the "
            "database to gate in the DSN (postgresql://user@host:5432/shop), or set "
            'database = "shop" in plan.toml'
        )
    if not _PLAIN_NAME.fullmatch(str(named)):
        # The cluster's URLs and PgBouncer's [databases] carry the name as it is.
        raise UsageError(
            f"database {named!r} has characters the harness's connection strings cannot carry "
            "yet (letters, digits, _ . $ - only); gate a dump of it, restored under a plain "
            "name, with --legacy"
        )
    return str(named)


def inspect_source(
    dsn: str,
    *,
    database: str | None,
    provider: str = "local",
    pg_bin: str | None = None,
    legacy: Path | None = None,
    progress: Progress = quiet,
) -> CloneSource:
    """Check ``dsn`` can be copied to start the gate's primary; refuse with the fix if not.

    ``database``: the plan's ``database`` (None: the DSN's). Each refusal is a
    :class:`UsageError` (exit 2), raised before anything is started or written.
    """
    refuse_provider(provider)
    if legacy is not None:
        raise UsageError(
            f"--clone-from and --legacy {legacy} both say where the database comes from; "
            "the clone already holds it: give one of them"
        )
    name = gated_database(dsn, database)
    bins = find_binaries(pg_bin)
    local = parse_version(bins.version())
    shown = redact(dsn)
    try:
        conn = connect(dsn, timeout=10)
    except ConnectionFailed as exc:
        if f'database "{conninfo_to_dict(dsn).get("dbname")}" does not exist' in exc.reason:
            raise UsageError(
                f"--clone-from {shown}: {exc.reason}; name a database the source has in the "
                "DSN (the one to gate, or postgres)"
            ) from None
        raise UsageError(
            f"the source to clone, {shown}, cannot be reached: {exc.reason}; check the host, "
            "port, user and password (in the DSN or PGPASSWORD) and that the server is up"
        ) from None
    with conn:
        row = conn.execute(_INSPECT).fetchone()
        assert row is not None
        version_num, version, standby, superuser, user, replication = row
        sizes = {str(n): (int(s) if s is not None else None) for n, s in conn.execute(_DATABASES)}
        tablespaces = [f"{n} ({loc})" for n, loc in conn.execute(_TABLESPACES)]
        settings = tuple(
            (str(k), str(v)) for k, v in conn.execute(_SETTINGS, (list(CARRIED_SETTINGS),))
        )
    if local is None or int(version_num) // 10000 != local[0]:
        raise UsageError(
            f"the source {shown} runs PostgreSQL {version} and the local binaries in "
            f"{bins.bindir} are {bins.version()}; a physical copy starts only on the same "
            f"major version: give --pg-bin the bin directory of PostgreSQL "
            f"{int(version_num) // 10000}, or dump the database and gate it with --legacy"
        )
    if not replication:
        raise UsageError(
            f"role {user} may not copy {shown}: it has neither REPLICATION nor SUPERUSER; run "
            f"ALTER ROLE {user} REPLICATION on the source's primary, or give --clone-from a "
            "role that has it"
        )
    if name not in sizes:
        raise UsageError(
            f"database {name!r} is not on the source {shown} (it has "
            f"{', '.join(n for n in sizes if not n.startswith('template'))}); name the "
            "database to gate in the DSN, or fix database = in plan.toml"
        )
    if tablespaces:
        raise UsageError(
            f"the source {shown} keeps data in tablespaces outside its data directory "
            f"({', '.join(tablespaces)}), which a clone cannot map yet; gate a dump of the "
            "database with --legacy instead"
        )
    _probe_replication(dsn, shown=shown)
    from harness.legacy.capacity import check_clone_room  # it needs the local provider's dir

    cluster_bytes = sum(s or 0 for s in sizes.values())
    check_clone_room(
        source=shown, cluster_bytes=cluster_bytes, database_bytes=sizes[name] or cluster_bytes
    )
    source = CloneSource(
        dsn=dsn,
        database=name,
        standby=bool(standby),
        version=str(version),
        superuser=str(superuser),
        cluster_bytes=cluster_bytes,
        database_bytes=sizes[name] or 0,
        settings=settings,
        max_rate=os.environ.get(ENV_MAX_RATE) or None,
    )
    progress(_describe(source, shown=shown))
    return source


def clone_for(
    dsn: str | None,
    plan: Plan | None,
    *,
    provider: str,
    pg_bin: str | None,
    legacy: Path | None,
    progress: Progress = quiet,
) -> CloneSource | None:
    """:func:`inspect_source` for a command's ``--clone-from`` (None: no clone asked for)."""
    if dsn is None:
        return None
    return inspect_source(
        dsn,
        database=plan.database if plan is not None else None,
        provider=provider,
        pg_bin=pg_bin,
        legacy=legacy,
        progress=progress,
    )


def add_clone_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clone-from",
        metavar="DSN",
        help="local provider: start the primary from a pg_basebackup of this server (a standby "
        "writes nothing for it) and gate its database, the plan's or else the DSN's, as it is",
    )


def clone_from_args(
    args: argparse.Namespace, plan: Plan | None, *, progress: Progress = quiet
) -> CloneSource | None:
    """:func:`clone_for` for a command's options."""
    return clone_for(
        args.clone_from,
        plan,
        provider=args.provider,
        pg_bin=args.pg_bin,
        legacy=args.legacy,
        progress=progress,
    )


def _probe_replication(dsn: str, *, shown: str) -> None:
    """Open the kind of connection pg_basebackup opens: pg_hba.conf and walsender slots
    answer here, before anything is started, rather than halfway through the copy."""
    try:
        conn = psycopg.connect(dsn, autocommit=True, replication="true", connect_timeout=10)
    except psycopg.Error as exc:
        reason = redact(str(exc)).strip().splitlines()[-1].removeprefix("FATAL:").strip()
        raise UsageError(
            f"{shown} refuses a replication connection: {reason}; {_NO_REPLICATION_FIX}"
        ) from None
    with conn:
        result = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise UsageError(
                f"{shown} answers no replication command: {message}; {_NO_REPLICATION_FIX}"
            )


def _describe(source: CloneSource, *, shown: str) -> str:
    said = (
        f"--clone-from: {shown} is a {source.role} running PostgreSQL {source.version}, "
        f"{source.cluster_bytes / 1e6:,.0f} MB of databases, {source.database} of them "
        f"{source.database_bytes / 1e6:,.0f} MB"
    )
    if source.standby:
        return said + "; a copy of a standby writes nothing on it or on its primary"
    return said + (
        "; it is a PRIMARY: pg_basebackup makes it checkpoint and writes the backup's start "
        "and end records into its WAL (its data is not changed); clone one of its standbys "
        "to write nothing at all"
    )
