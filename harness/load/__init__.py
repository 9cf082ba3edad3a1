"""Load tests of the plan's architecture: the baseline and the target under one workload.

``harness load compare`` runs Locust (in processes of its own) against both
architectures and reports the plan's success metrics; see docs/load-comparison.md.
Importing this package imports neither Locust nor matplotlib.
"""

from __future__ import annotations

from harness.load.config import DEFAULT_CONFIG, LoadConfig, load_config
from harness.load.workload import Operation, Workload, from_plan_workload, workload_for

__all__ = [
    "DEFAULT_CONFIG",
    "LoadConfig",
    "Operation",
    "Workload",
    "from_plan_workload",
    "load_config",
    "workload_for",
]
