"""Settings a migration gives the application's sessions: those that change what they do.

``ALTER DATABASE … SET`` and ``ALTER ROLE … SET`` reach every session opened after
them, as the plan's ``search_path`` does on purpose. Some settings change what a
session's statements mean or keep, with no error anywhere for a check to meet:
``session_replication_role = replica`` fires no trigger and checks no foreign key,
``synchronous_commit = off`` acknowledges commits a crash can lose, ``bytea_output``
or ``DateStyle`` change the text the application parses, ``default_transaction_isolation``
makes transactions that never failed fail with serialization errors. Those, set or
changed by the migration for the database or for a role the application logs in
as, are findings; any other setting it changes (a timeout, ``work_mem``) is named in
the verdict, and its effects are the sessions checks' to meet (``search_path`` is
the dependencies' and the sessions checks' own subject, and a read-only default is
``privileges.tried``'s, whose writes meet it).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.catalog import Fingerprint
from harness.invariants.result import Check
from harness.plan import Plan
from harness.plan.default_workload import workload_of

__all__ = ["check_session_settings"]

NAME = "settings.for_sessions"

_TEXT = "changes the text values are written and read in, which the application parses"
# parameter (lower case) -> (values that are harmless, why any other is a finding)
_MEANING: Mapping[str, tuple[frozenset[str], str]] = {
    "session_replication_role": (
        frozenset({"origin"}),
        "its sessions fire no trigger and check no foreign key",
    ),
    "synchronous_commit": (
        frozenset({"on", "remote_apply", "remote_write", "local"}),
        "a commit is acknowledged before it is on disk: a crash loses what the application "
        "was told was saved",
    ),
    "default_transaction_isolation": (
        frozenset({"read committed"}),
        "transactions that never failed now fail with serialization errors under "
        "concurrency, and the application retries none of them",
    ),
    "row_security": (frozenset({"on"}), "queries on tables with row-level security fail"),
    "standard_conforming_strings": (
        frozenset({"on"}),
        "backslashes in the application's string literals change meaning",
    ),
    "transform_null_equals": (frozenset({"off"}), "`x = NULL` changes meaning"),
    "bytea_output": (frozenset({"hex"}), _TEXT),
    "datestyle": (frozenset({"iso, mdy"}), _TEXT),
    "intervalstyle": (frozenset({"postgres"}), _TEXT),
    "timezone": (frozenset(), _TEXT),
    "extra_float_digits": (frozenset({"1"}), _TEXT),
    "client_encoding": (frozenset({"utf8"}), _TEXT),
    "lc_monetary": (frozenset(), _TEXT),
    "lc_numeric": (frozenset(), _TEXT),
}
_OWN_SUBJECT = {"search_path"}


def _scopes(plan: Plan, after: Fingerprint) -> list[str]:
    roles = workload_of(plan).roles
    wanted = {"database"} | {f"role {r}" for r in roles} | {f"role {r} in database" for r in roles}
    return sorted(wanted & set(after.settings))


def _norm(value: str) -> str:
    return value.strip().strip("'\"").lower()


def check_session_settings(plan: Plan, before: Fingerprint, after: Fingerprint) -> Check:
    offenders, other = [], []
    for scope in _scopes(plan, after):
        was = {k.lower(): v for k, v in before.settings.get(scope, {}).items()}
        for key, value in sorted(after.settings[scope].items()):
            name = key.lower()
            if name in _OWN_SUBJECT or was.get(name) == value:
                continue
            harmless, why = _MEANING.get(name, (None, ""))
            if harmless is not None and _norm(value) not in harmless:
                offenders.append(
                    f"{scope}: {key} = {value}, set by the migration: {why}"
                    + (f" (it was {was[name]})" if name in was else "")
                )
            else:
                other.append(f"{scope}: {key} = {value}")
    return Check.of(
        NAME,
        offenders=offenders,
        ok="no setting the migration gives the application's sessions changes what they do"
        + (f" (other settings it changed: {'; '.join(other)})" if other else ""),
        failed="the migration gives the application's sessions a setting that changes what "
        "their statements mean or keep",
    )
