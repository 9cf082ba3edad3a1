"""The plan's roles, able to log in: the application's own identity, not ``SET ROLE``.

A privilege that works for ``postgres`` proves nothing about ``app_rw``; the
application's requests must log in as the role the plan names, through PgBouncer,
as the application does. The legacy database carries no roles (a dump is of one
database, roles belong to the cluster), so the harness gives each plan role
before the migration what the application has in production today:

- a login with a password the harness generates. Locally the servers trust
  loopback (initdb ``-A trust``) and PgBouncer trusts the users of its auth_file,
  so the password is not what lets the role in; it is there so that the same
  DSNs work on a cluster whose pg_hba asks for one. It never reaches a report.
- the access the application has to the legacy tables today, through a group
  role (``pgcutover_app_read``: SELECT; ``pgcutover_app_write``: SELECT, INSERT,
  UPDATE, DELETE and sequence USAGE) rather than grants to the role itself. A
  plan's rollback revokes what it granted to its roles; a grant of the role's own
  would be revoked with them and the rollback would look inexact. The group's
  grants follow the tables wherever the plan moves them, and default privileges
  give it what the migration's owner creates in those schemas later (a view left
  in a table's place), as a production database set up for its application does.

Between the migration and the checks of the migrated database the harness
takes the group membership away (:meth:`Logins.without_legacy_access`), so
``privileges.tried``, the new sessions' check and the traffic's reads sent then (each
read query once, from the connections opened before the migration) see only what
the plan itself granted, and gives it back for the rollback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg import sql

from harness.cluster import Endpoints
from harness.databases import connect
from harness.dsn import redact, with_login
from harness.errors import UsageError

__all__ = ["GROUPS", "Logins", "provision_logins"]

GROUPS = {"read": "pgcutover_app_read", "write": "pgcutover_app_write"}
_SCHEMAS = """
SELECT nspname FROM pg_namespace
 WHERE nspname NOT IN ('information_schema', 'pgcutover') AND nspname NOT LIKE 'pg\\_%'
 ORDER BY 1"""


@dataclass
class Logins:
    """DSNs for each role on each path, and the roles' legacy access, switched on or off."""

    endpoints: Endpoints
    admin: str
    passwords: dict[str, str]
    access: dict[str, str] = field(default_factory=dict)  # role -> group

    def dsn(self, role: str | None, *, path: str) -> str:
        """``path``: primary, replica, writer (PgBouncer) or reader (PgBouncer)."""
        base = str(getattr(self.endpoints, path))
        if role is None:
            return base
        return with_login(base, user=role, password=self.passwords[role])

    def _membership(self, *, grant: bool) -> None:
        if not self.access:
            return
        with connect(self.admin) as conn:
            for role, group in self.access.items():
                template = "GRANT {} TO {}" if grant else "REVOKE {} FROM {}"
                conn.execute(sql.SQL(template).format(sql.Identifier(group), sql.Identifier(role)))

    @contextmanager
    def without_legacy_access(self) -> Iterator[None]:
        """Only the plan's own grants count inside; the legacy access comes back after."""
        self._membership(grant=False)
        try:
            yield
        finally:
            self._membership(grant=True)

    def drop_legacy_access(self) -> None:
        self._membership(grant=False)


def provision_logins(
    endpoints: Endpoints,
    roles: Mapping[str, Iterable[str]],
    *,
    allow_users: Callable[[Iterable[str]], None] | None = None,
    may_alter_roles: bool = True,
) -> Logins:
    """Let each role of ``roles`` (role -> the kinds it runs: read, write) log in.

    ``allow_users`` lets users through the cluster's PgBouncers (``Cluster.allow_users``);
    left out where the endpoints are no pooler the harness runs. Without
    ``may_alter_roles`` a role that exists already is refused, never given a password.
    """
    passwords = {role: secrets.token_urlsafe(18) for role in roles}
    logins = Logins(endpoints=endpoints, admin=endpoints.primary, passwords=passwords)
    if not roles:
        return logins
    with connect(endpoints.primary) as conn:
        existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        taken = sorted(set(passwords) & existing)
        if taken and not may_alter_roles:
            raise UsageError(
                f"the workload logs in as {', '.join(taken)}, which already exist on "
                f"{redact(endpoints.primary)}; the gate never changes a role it did not create "
                "(a new password would lock out whoever uses it): run the gate on a server "
                "without them (--provider local) or without traffic (--no-traffic)"
            )
        for role, password in passwords.items():
            verb = "ALTER" if role in existing else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        schemas = [str(r[0]) for r in conn.execute(_SCHEMAS).fetchall()]
        for kind, group in GROUPS.items():
            if group not in existing:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
            names = sql.SQL(", ").join(sql.Identifier(s) for s in schemas)
            g = sql.Identifier(group)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(names, g))
            tables = "SELECT" if kind == "read" else "SELECT, INSERT, UPDATE, DELETE"
            conn.execute(
                sql.SQL("GRANT " + tables + " ON ALL TABLES IN SCHEMA {} TO {}").format(names, g)
            )
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT " + tables + " ON TABLES TO {}"
                ).format(names, g)
            )
            if kind == "write":
                conn.execute(
                    sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                        names, g
                    )
                )
                conn.execute(
                    sql.SQL(
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE, SELECT "
                        "ON SEQUENCES TO {}"
                    ).format(names, g)
                )
        for role, kinds in roles.items():
            logins.access[role] = GROUPS["write" if "write" in set(kinds) else "read"]
    logins._membership(grant=True)
    if allow_users is not None:
        allow_users(list(roles))
    return logins
