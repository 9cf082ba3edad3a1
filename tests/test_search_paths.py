"""The search_paths a session may start with, read from the database's and roles' settings."""

from __future__ import annotations

from harness.invariants.dependencies import search_paths

SERVER = ['"$user"', "public"]


def test_a_role_setting_in_this_database_overrides_the_roles_own() -> None:
    """ALTER ROLE app IN DATABASE … SET search_path wins over ALTER ROLE app SET …."""
    settings = {
        "database": {"search_path": "sales, public"},
        "role app": {"search_path": "legacy"},
        "role app in database": {"search_path": "sales, audit"},
        "role report": {"search_path": "reports"},
    }
    paths = search_paths(settings, server=SERVER)
    assert ["sales", "audit"] in paths
    assert ["reports"] in paths
    assert ["legacy"] not in paths
    assert paths[0] == ["sales", "public"]


def test_without_a_database_setting_the_servers_path_is_the_first() -> None:
    assert search_paths({"role app": {"work_mem": "8MB"}}, server=SERVER) == [SERVER]
