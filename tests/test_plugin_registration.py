"""This repository's suite loads pgcutover's pytest plugin once, as another repository would."""

from __future__ import annotations

import os
import types

import pytest

from harness.testing.fix_cluster import missing_capability


def test_each_fixture_module_is_registered_once(pytestconfig: pytest.Config) -> None:
    modules = [
        p.__name__
        for p in pytestconfig.pluginmanager.get_plugins()
        if isinstance(p, types.ModuleType) and p.__name__.startswith("harness.testing")
    ]
    assert sorted(modules) == [
        "harness.testing.fix_cluster",
        "harness.testing.fix_legacy",
        "harness.testing.fix_plan",
        "harness.testing.plugin",
    ]


def test_the_plugin_comes_from_the_entry_point_when_installed(pytestconfig: pytest.Config) -> None:
    from importlib.metadata import entry_points

    installed = any(ep.value == "harness.testing.plugin" for ep in entry_points(group="pytest11"))
    if not installed:
        missing_capability("pgcutover is not installed with its entry points (pip install -e .)")
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        # Entry points are not loaded: conftest.py lists the module instead.
        assert pytestconfig.pluginmanager.has_plugin("harness.testing.plugin")
    else:
        assert pytestconfig.pluginmanager.has_plugin("pgcutover")
