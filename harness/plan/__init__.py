"""Migration plans: a directory of ``plan.toml`` plus numbered up and down SQL steps."""

from harness.plan.model import (
    Layout,
    Plan,
    PrivilegeRule,
    RunnerSettings,
    Step,
    load_plan,
    split_name,
)
from harness.plan.sqltext import Statement, split_statements

__all__ = [
    "Layout",
    "Plan",
    "PrivilegeRule",
    "RunnerSettings",
    "Statement",
    "Step",
    "load_plan",
    "split_name",
    "split_statements",
]
