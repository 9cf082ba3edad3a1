"""Fixtures live in plugin modules, each owning its options; this file only lists them."""

pytest_plugins = (
    "harness.testing.fix_cluster",
    "harness.testing.fix_legacy",
)
