"""``roles.created``: every role the plan relies on exists on a server that never had it.

Roles belong to the cluster, not to a database, so a plan that grants to a role
and never creates it works only where someone created it first. The gate may
itself create the plan's roles before the migration (the application's traffic
logs in as them), which would hide that; so this is read from the plan's SQL,
by PostgreSQL's parser, for each role that was not on the server when the gate
began.
"""

from __future__ import annotations

from collections.abc import Collection

from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.sqltext import created_roles

__all__ = ["check_roles_created", "left_without_login"]


def _read(plan: Plan) -> tuple[set[str], list[str], dict[str, bool]]:
    """The roles the up steps create, what could not be read, and each role's LOGIN."""
    names: set[str] = set()
    unknown: list[str] = []
    logins: dict[str, bool] = {}
    for step in plan.up:
        found = created_roles(step.sql)
        names |= found.names
        logins.update(found.logins)
        unknown += [f"{step.label}: {why}" for why in found.unknown]
    return names, unknown, logins


def left_without_login(plan: Plan) -> list[str]:
    """The application's roles the plan's SQL visibly leaves unable to log in."""
    logins = _read(plan)[2]
    applications = plan.workload.roles if plan.workload is not None else ()
    return [role for role in applications if logins.get(role) is False]


def check_roles_created(plan: Plan, *, existed: Collection[str]) -> Check:
    """``existed``: the roles on the server before the gate created any.

    A statement built at run time may be the CREATE ROLE of a role no step visibly
    creates, so that finding is then a warning. A role the SQL visibly leaves
    without LOGIN stays a failure whatever such a statement does: a login given
    back at run time would be read nowhere, and the fix (``CREATE ROLE … LOGIN``)
    costs nothing.
    """
    names, unknown, _ = _read(plan)
    missing = [r for r in plan.layout.roles if r not in existed and r not in names]
    offenders = [
        f"`{role}` does not exist before the migration and no up step creates it; on a "
        f'server without it, every GRANT … TO {role} fails with \'role "{role}" does not '
        "exist': create it in the first step when missing (roles are cluster-wide)"
        for role in missing
    ]
    # The gate's traffic gives these roles a login of its own before the migration, which
    # would hide a plan that leaves them without one: read from the SQL instead.
    no_login = [
        f"`{role}`: the plan leaves it without LOGIN (CREATE ROLE defaults to NOLOGIN, or an "
        "ALTER ROLE … NOLOGIN), yet the application logs in as it: CREATE ROLE "
        f"{role} LOGIN"
        for role in left_without_login(plan)
    ]
    if offenders and unknown and not no_login:
        # A statement built at run time may be the CREATE ROLE: say so, do not fail.
        return Check.of(
            "roles.created",
            offenders=offenders + unknown,
            ok="",
            failed="no step visibly creates these roles, and some statements are built at "
            "run time; check that one of them does",
            warn_only=True,
        )
    created = sorted(set(plan.layout.roles) & names)
    built = (
        [f"(read around {len(unknown)} statement(s) built at run time: {'; '.join(unknown)})"]
        if no_login and unknown
        else []
    )
    return Check.of(
        "roles.created",
        offenders=no_login + offenders + built,
        ok=f"the plan creates the roles it relies on ({', '.join(created)})"
        if created
        else "every role the plan relies on existed before it",
        failed="the plan relies on roles it never creates, or leaves them unable to log in",
    )
