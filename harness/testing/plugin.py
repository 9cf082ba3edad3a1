"""The pytest plugin pgcutover installs (entry point ``pytest11``: ``pgcutover``).

Installing the package is all another repository needs: this module loads the
fixture plugins, each owning its options, and ``--pg-plan`` turns a plan's gate
checks into test items.
"""

pytest_plugins = (
    "harness.testing.fix_cluster",
    "harness.testing.fix_legacy",
    "harness.testing.fix_plan",
)
