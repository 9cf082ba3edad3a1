"""The checks a gate could not make, as checks: why not, and what would make them.

A SAFE verdict is read as "everything was checked". Against a server without
a replica, or with ``--no-traffic``, whole families of checks cannot run; left
out silently, a reader counts the checks printed and never learns which ones
are missing. Each function here returns the checks one missing capability
costs, as ``not_run`` verdicts that name the capability and the flag or setting
that provides it, so the verdict line, ``gate.json``, JUnit (skipped) and the
page all list them, and ``--require-all`` can fail a gate that left any out.

Which way the requests went is named from :class:`~harness.cluster.Endpoints`
(:func:`path_label`): a provider without a pooler gives the same DSN for the
writer as for the primary, one without a replica the same for the replica.
"""

from __future__ import annotations

from harness.cluster import Endpoints
from harness.invariants.acting import Login, LoginFor
from harness.invariants.result import Check

__all__ = [
    "BASELINE_CHECKS",
    "LOGIN_CHECK",
    "REPLICA_CHECKS",
    "TRAFFIC_CHECKS",
    "LoginsTried",
    "not_run_in_gate",
    "not_run_in_verify",
    "not_run_without_baseline",
    "not_run_without_pooler",
    "not_run_without_replica",
    "not_run_without_traffic",
    "not_run_without_writes",
    "path_label",
    "path_labels",
]

REPLICA_CHECKS = ("replica.matches_primary", "rollback.exact_on_replica")
TRAFFIC_CHECKS = (
    "traffic.no_errors",
    "traffic.stall",
    "traffic.writes_kept",
    "traffic.old_connections_used",
)
BASELINE_CHECKS = (
    "data.unchanged",
    "tables.intact",
    "sequences.not_reset",
    "compatibility_views.faithful",
    "connections.room",
    "settings.for_sessions",
    "privileges.granted",
    "sessions.old_sessions_as_roles",
)
POOLER_CHECK = "pooler.sessions_exercised"
LOGIN_CHECK = "privileges.logged_in"
WRITES_CHECK = "traffic.writes_kept"

_REPLICA_FIX = (
    "give a streaming replica of the primary: DATABASE_READONLY_URL with --provider "
    "external, --reader-dsn with harness verify (the local and docker providers start one)"
)


def not_run_without_replica(names: tuple[str, ...] = REPLICA_CHECKS) -> list[Check]:
    """The replica's comparisons, where the reader is the primary itself."""
    return [
        Check.not_run(
            name,
            why="there is no streaming replica (the reader is the primary itself), so "
            "nothing was compared on a standby",
            run_with=_REPLICA_FIX,
        )
        for name in names
    ]


def not_run_without_traffic() -> list[Check]:
    """The application's traffic checks, when the gate ran without it."""
    return [
        Check.not_run(
            name,
            why="the gate ran without the application's traffic (--no-traffic), so no "
            "request ran during the steps",
            run_with="run the gate without --no-traffic (the plan's [workload], or its "
            "[sessions] queries when it has none)",
        )
        for name in TRAFFIC_CHECKS
    ]


def not_run_without_baseline() -> list[Check]:
    """The before-and-after comparisons, when no fingerprint of the legacy database was given."""
    return [
        Check.not_run(
            name,
            why="there is no fingerprint of the database before the migration to compare with",
            run_with="harness verify --baseline FILE, FILE from `harness fingerprint` taken "
            "before migrating (harness gate always takes one)",
        )
        for name in BASELINE_CHECKS
    ]


def not_run_without_pooler(endpoints: Endpoints) -> list[Check]:
    """What a pooler in front of the primary adds, where there is none.

    Through PgBouncer the application's sessions outlive a step on server
    connections opened before it, and a role must be admitted by the pooler's own
    auth; with the application connecting straight to the primary neither is
    exercised. A server someone else runs may itself be a PgBouncer: the harness
    cannot tell from one DSN, so it says what it was given.
    """
    if endpoints.writer != endpoints.primary:
        return []
    return [
        Check.not_run(
            POOLER_CHECK,
            why="no pooler was started or given separately from the primary (the writer is "
            "the primary's own DSN), so no session, login or request went through PgBouncer",
            run_with="--provider local or docker (they start PgBouncer in front of the "
            "primary and the replica, with the plan's [pgbouncer] settings)",
        )
    ]


def path_label(endpoints: Endpoints, path: str) -> str:
    """The way ``path`` (primary, replica, writer or reader) really reached a server.

    A provider without a pooler gives the primary's DSN as the writer and the
    replica's as the reader; one without a replica gives the primary's as both.
    """
    primary, replica = endpoints.primary, endpoints.replica
    if path == "primary" or (path == "writer" and endpoints.writer == primary):
        return "direct to the primary"
    if path == "writer":
        return "PgBouncer writer"
    if path == "replica" or (path == "reader" and endpoints.reader == replica):
        return "direct to the primary" if replica == primary else "direct to the replica"
    if path == "reader":
        return "PgBouncer reader"
    return path


def path_labels(endpoints: Endpoints) -> dict[str, str]:
    """:func:`path_label` of each of the four paths."""
    return {p: path_label(endpoints, p) for p in ("primary", "replica", "writer", "reader")}


def not_run_without_writes(*, declared: bool) -> Check:
    """``traffic.writes_kept`` for a workload that writes nothing: there is nothing to keep."""
    why = (
        "the plan's [workload] has no write query"
        if declared
        else "the plan has no [workload]: the default one only reads its tables"
    )
    return Check.not_run(
        WRITES_CHECK,
        why=f"{why}, so no application write was made to check",
        run_with='give the plan a [workload] with kind = "write" queries as its roles '
        "(docs/workload.md)",
    )


class LoginsTried:
    """A :data:`LoginFor` that remembers the roles it knew no login of.

    ``privileges.tried`` falls back to ``SET ROLE`` for such a role: its
    privileges are tried, but not its LOGIN, CONNECT or the settings a session
    gets at login, which is what :data:`LOGIN_CHECK` reports as not run.
    """

    def __init__(self, login: LoginFor | None) -> None:
        self._login = login
        self.missing: list[str] = []

    def __call__(self, role: str) -> Login | None:
        found = self._login(role) if self._login is not None else None
        if found is None and role not in self.missing:
            self.missing.append(role)
        return found

    def not_run(self) -> list[Check]:
        if not self.missing:
            return []
        roles = ", ".join(sorted(self.missing))
        return [
            Check.not_run(
                LOGIN_CHECK,
                why=f"no login of {roles} is known to the harness (a server it does not run), "
                "so privileges.tried tried them by SET ROLE: their LOGIN, CONNECT and the "
                "settings a session gets at login were not tried",
                run_with="harness verify --login ROLE=DSN; in the gate, the traffic logs in as "
                "its [workload] roles, and the local and docker providers as any role",
            )
        ]


def not_run_in_verify(
    *, baseline: bool, replica: bool, logins: LoginsTried | None = None
) -> list[Check]:
    """What :func:`~harness.gate.verify_database` leaves out for want of a baseline, a
    replica, or a login of a role."""
    return (
        (not_run_without_baseline() if not baseline else [])
        + (not_run_without_replica(REPLICA_CHECKS[:1]) if not replica else [])
        + (logins.not_run() if logins is not None else [])
    )


def not_run_in_gate(endpoints: Endpoints, *, replica: bool, traffic: bool) -> list[Check]:
    """What the gate's own sequence leaves out: the replica after rollback, traffic, pooler."""
    return (
        (not_run_without_replica(REPLICA_CHECKS[1:]) if not replica else [])
        + (not_run_without_traffic() if not traffic else [])
        + not_run_without_pooler(endpoints)
    )
