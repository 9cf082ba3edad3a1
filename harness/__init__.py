"""pgcutover: prove a PostgreSQL schema migration safe before it reaches production.

The public face is small: start a cluster, load a plan, gate it; fingerprint a
database and compare two; route an application's reads and writes
(``harness.routing``). Everything a user can meet on purpose is a ``HarnessError``.

The names below load on first use: an application that imports only
``harness.routing`` must not pay for the gate, the runner and the catalog.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.errors import (
    ClusterStartError,
    HarnessError,
    InfrastructureError,
    PlanError,
    StepFailed,
    UsageError,
)

if TYPE_CHECKING:
    from harness.catalog import Fingerprint, diff, fingerprint
    from harness.cluster import Cluster, Endpoints, start_cluster
    from harness.gate import GateReport, run_gate
    from harness.plan import Plan, load_plan

__version__ = "0.1.0"

_LAZY = {
    "Fingerprint": "harness.catalog",
    "diff": "harness.catalog",
    "fingerprint": "harness.catalog",
    "Cluster": "harness.cluster",
    "Endpoints": "harness.cluster",
    "start_cluster": "harness.cluster",
    "GateReport": "harness.gate",
    "run_gate": "harness.gate",
    "Plan": "harness.plan",
    "load_plan": "harness.plan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
