"""``sessions.old_sessions_as_roles``: what the application's sessions opened before the
migration meet as their roles, on the plan's grants alone.

A session keeps the ``search_path`` it started with, so the application's sessions
open across the cutover go on naming the old schema: after a move, their bare names
reach the views a plan leaves in the tables' place, under the grants the plan gave on
those views, not the ones it gave on the tables. A grant forgotten there is met only
by those sessions, and only as the role: the harness reads everything.
``sessions.keep_working`` holds real sessions open through every step, as the harness
(with traffic, as one role, with the access it had before); this check opens, after
the migration, a session as each role the application logs in as (``SET ROLE`` where
the harness has no login as it), gives it the path such a session had before the
migration — the role's setting in the database, the role's own, the database's, as
the baseline recorded them, else the server's built-in default — and runs what the
role runs (see harness.invariants.new_sessions).

Only refusals count: a name that does not resolve on the old path is
``sessions.keep_working``'s finding, and a refusal ``privileges.tried`` failed, or one
of a ``[sessions]`` query (no role is named for those), is counted in the reason.
"""

from __future__ import annotations

from collections.abc import Collection

import psycopg
from psycopg import sql

from harness.catalog import Fingerprint
from harness.connections import Conn, connect
from harness.invariants.acting import LoginFor
from harness.invariants.new_sessions import (
    REFUSED,
    RoleQueries,
    heaviest_reader,
    role_queries,
    run_queries,
    unjudged,
)
from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.default_workload import workload_of

__all__ = ["built_in_search_path", "check_old_sessions_as_roles", "search_path_in"]

NAME = "sessions.old_sessions_as_roles"
_APPLICATION = "pgcutover old-path session"
_BUILT_IN = "SELECT boot_val FROM pg_settings WHERE name = 'search_path'"


def search_path_in(state: Fingerprint, role: str, default: str) -> str:
    """The search_path a session of ``role`` opened in ``state`` starts with (before the
    migration: the one old sessions keep); ``default``: the server's built-in one."""
    for scope in (f"role {role} in database", f"role {role}", "database"):
        value = state.settings.get(scope, {}).get("search_path")
        if value is not None:
            return value
    return default


def built_in_search_path(conn: Conn) -> str:
    """The search_path a session gets where no setting gives it one."""
    row = conn.execute(_BUILT_IN).fetchone()
    return str(row[0]) if row else '"$user", public'


def check_old_sessions_as_roles(
    plan: Plan,
    after: Fingerprint,
    before: Fingerprint,
    *,
    harness_dsn: str,
    login: LoginFor | None,
    judged: Collection[tuple[str, str]] = (),
) -> Check:
    """Each workload role's queries on its old search_path; each refusal an offender."""
    workload = workload_of(plan)
    everyone = [
        q
        for q in role_queries(plan, workload, after, session_role=heaviest_reader(workload))
        if q.role is not None
    ]
    offenders: list[str] = []
    done: list[str] = []
    refused = 0
    with connect(harness_dsn) as admin:
        default = built_in_search_path(admin)
        roles = {str(r[0]) for r in admin.execute("SELECT rolname FROM pg_roles").fetchall()}
    for queries in everyone:
        role = str(queries.role)
        if role not in roles:  # roles.created and privileges.tried say so
            done.append(f"{role}: not tried, no such role")
            continue
        path = search_path_in(before, role, default)
        try:
            failures, how = _run_as(role, queries, path, harness_dsn=harness_dsn, login=login)
        except psycopg.Error as exc:  # no login, and the harness may not SET ROLE to it
            done.append(f"{role}: not tried, {(exc.diag.message_primary or str(exc)).strip()}")
            continue
        refusals = [f for f in failures if f[1].startswith(REFUSED)]
        found, theirs = unjudged(role, refusals, judged, guessed=plan.session_queries)
        refused += len(theirs)
        done.append(f"{role}: {queries.count} ({how}, search_path {path})")
        offenders += [
            f"as {role}, search_path {path} (sessions opened before the migration keep it): "
            f"`{text}`: {message}"
            for text, message in found
        ]
    if refused:
        done.append(
            f"{refused} refused, left to privileges.tried and the plan's rules (or a "
            "[sessions] query, run as a role the plan does not name)"
        )
    count = sum(q.count for q in everyone)
    return Check.of(
        NAME,
        offenders=offenders,
        ok=f"{count} application queries, each as its role on the search_path its sessions "
        "opened before the migration keep, met no refusal the plan's grants left in their way"
        + (f" ({'; '.join(done)})" if done else " (the workload names no role of its own)"),
        failed="sessions opened before the migration are refused, as the application's roles, "
        "what the plan's grants leave out of their old search_path",
    )


def _run_as(
    role: str, queries: RoleQueries, path: str, *, harness_dsn: str, login: LoginFor | None
) -> tuple[list[tuple[str, str]], str]:
    """What failed for ``role`` on ``path``, and how the session was the role."""
    how = login(role) if login is not None else None
    conn: Conn | None = None
    if how is not None:
        try:
            conn = connect(how.dsn, application_name=_APPLICATION)
        except psycopg.Error:
            conn = None  # a login refused is privileges.tried's finding; grants still count
    way = "logged in as it" if conn is not None else "SET ROLE"
    if conn is None:
        conn = connect(harness_dsn, application_name=_APPLICATION)
        try:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        except psycopg.Error:
            conn.close()
            raise
    with conn:
        conn.execute("SELECT set_config('search_path', %s, false)", (path,))
        return run_queries(conn, queries), way
