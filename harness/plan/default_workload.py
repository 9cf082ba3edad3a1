"""The traffic of a plan without ``[workload]``: its tables and ``[sessions]`` queries,
read as the roles its rules let read them.

A superuser passes every privilege check, so traffic run as the harness's own login
cannot show that a step left the application unable to read what it read before.
The plan names its roles and what each may read (``[[privileges]]``); the reads are
spread over those roles, as the application's own would be:

- each table's one-row read, by its bare name, goes to a role whose rules give it
  SELECT where the table ends up; a role whose rules also cover where the table was
  comes first, because a session opened before the migration still resolves the bare
  name there (a view left in its place, say) and reads it as that role;
- the ``[sessions]`` queries go to the role whose rules let it read every table where
  it ends up and the most of them where they were: the widest reader. Which tables a
  query reads is not known without running it, so the widest reader runs it.

Only roles the rollback keeps (``[rollback] keeps_roles``) are chosen: the
application logs in as them again after the rollback, while a role the rollback
drops was never its login before the migration. A read no such role's rules cover
runs as the harness's login, as before roles were chosen at all.
"""

from __future__ import annotations

from harness.plan.model import Plan, split_name
from harness.plan.workload import Workload, WorkloadQuery

__all__ = ["default_workload", "workload_of"]


def workload_of(plan: Plan) -> Workload:
    """The plan's ``[workload]``, or the simple case made from its tables and ``[sessions]``."""
    return plan.workload if plan.workload is not None else default_workload(plan)


def default_workload(plan: Plan) -> Workload:
    roles = [r for r in plan.layout.roles if r in plan.keeps_roles]
    tables = sorted(plan.layout.tables, key=lambda t: split_name(t)[1])
    queries: list[WorkloadQuery] = []
    for i, qualified in enumerate(tables):
        both = [r for r in roles if all(_reads(plan, r, qualified))]
        target = [r for r in roles if _reads(plan, r, qualified)[0]]
        readers = both or target
        bare = split_name(qualified)[1].replace('"', '""')
        text = f'SELECT * FROM "{bare}" LIMIT 1'  # noqa: S608 - the plan's own names
        queries.append(_read(i + 1, readers[i % len(readers)] if readers else None, text))
    everywhere = [r for r in roles if all(_reads(plan, r, t)[0] for t in tables)]
    widest = max(
        everywhere,
        key=lambda r: (sum(_reads(plan, r, t)[1] for t in tables), -roles.index(r)),
        default=None,
    )
    queries += [_read(len(queries) + 1, widest, text) for text in plan.session_queries]
    return Workload(queries=tuple(queries), declared=False)


def _reads(plan: Plan, role: str, qualified: str) -> tuple[bool, bool]:
    """Whether ``role``'s rules let it read ``qualified`` where it ends up, and where it was."""
    schema, table = split_name(qualified)
    return (
        plan.may_select(role, plan.layout.tables[qualified], table),
        plan.may_select(role, schema, table),
    )


def _read(number: int, role: str | None, text: str) -> WorkloadQuery:
    return WorkloadQuery(name=f"query_{number}", role=role, kind="read", weight=1, sql=(text,))
