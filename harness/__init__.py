"""pgcutover: prove a PostgreSQL schema migration safe before it reaches production.

The public face is small: start a cluster, load a plan, gate it; fingerprint a
database and compare two; route an application's reads and writes
(``harness.routing``). Everything a user can meet on purpose is a ``HarnessError``.
"""

from harness.catalog import Fingerprint, diff, fingerprint
from harness.cluster import Cluster, Endpoints, start_cluster
from harness.errors import (
    ClusterStartError,
    HarnessError,
    InfrastructureError,
    PlanError,
    StepFailed,
    UsageError,
)
from harness.gate import GateReport, run_gate
from harness.plan import Plan, load_plan

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "ClusterStartError",
    "Endpoints",
    "Fingerprint",
    "GateReport",
    "HarnessError",
    "InfrastructureError",
    "Plan",
    "PlanError",
    "StepFailed",
    "UsageError",
    "diff",
    "fingerprint",
    "load_plan",
    "run_gate",
    "start_cluster",
]
