"""Named checks with a verdict and a reason: what the gate proves about a plan."""

from harness.invariants.dependencies import check_dependencies
from harness.invariants.grants import check_grants
from harness.invariants.new_sessions import check_new_sessions_as_roles
from harness.invariants.privileges import probe_privileges
from harness.invariants.result import Check, Verdict
from harness.invariants.roles import check_roles_created
from harness.invariants.sessions import OldSessions, default_queries
from harness.invariants.structure import (
    check_data,
    check_foreign_keys,
    check_layout,
    check_same,
    check_sequences,
    check_table_parts,
    moved_name,
)

__all__ = [
    "Check",
    "OldSessions",
    "Verdict",
    "check_data",
    "check_dependencies",
    "check_foreign_keys",
    "check_grants",
    "check_layout",
    "check_new_sessions_as_roles",
    "check_roles_created",
    "check_same",
    "check_sequences",
    "check_table_parts",
    "default_queries",
    "moved_name",
    "probe_privileges",
]
