"""Tenant and schema names: checked before use, then only ever composed as identifiers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.legacy.application import LEGACY_LAYOUT, TABLE_SCHEMAS, translate_map
from harness.legacy.models import Base
from harness.routing import (
    InvalidIdentifier,
    schema_translate_map,
    set_local_search_path,
    validate_identifier,
)
from harness.testing.fix_cluster import in_ci


@pytest.mark.parametrize("name", ["tenant_kct", "t_new", "_scratch", "acme2", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert validate_identifier(name) == name


@pytest.mark.parametrize(
    "name",
    ["x; DROP TABLE customers", "Tenant", "1tenant", "", "a" * 64, "pg_catalog", 'a"b',
     "tenant-acme", " tenant", "tenant\n", "t\u00e9nant", "public.customers"],
)  # fmt: skip
def test_anything_else_is_rejected_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_identifier(name, what="tenant schema")
    assert str(info.value).startswith(f"tenant schema name {name!r} ")
    assert isinstance(info.value, ValueError)


@settings(max_examples=200, deadline=None, derandomize=in_ci())
@given(st.text(max_size=80))
def test_an_accepted_name_is_always_a_plain_lowercase_identifier(name: str) -> None:
    try:
        validate_identifier(name)
    except InvalidIdentifier:
        return
    assert re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name)
    assert not name.startswith("pg_")


def test_search_path_is_set_locally_with_quoted_identifiers() -> None:
    query = set_local_search_path(["tenant_kct", "tenant_shared"]).as_string(None)
    assert query == 'SET LOCAL search_path TO "tenant_kct", "tenant_shared"'
    with pytest.raises(InvalidIdentifier):
        set_local_search_path(["tenant_kct", "x; RESET ALL"])
    with pytest.raises(InvalidIdentifier, match="at least one schema"):
        set_local_search_path([])


def test_a_translate_map_checks_both_sides_of_every_entry() -> None:
    assert schema_translate_map({"tenant": "acme", "shared": "catalog"}) == {
        "tenant": "acme",
        "shared": "catalog",
    }
    assert schema_translate_map({}) == {}
    with pytest.raises(InvalidIdentifier, match=r"^tenant schema name 'acme; DROP SCHEMA x' "):
        schema_translate_map({"tenant": "acme; DROP SCHEMA x"})
    with pytest.raises(InvalidIdentifier, match=r"^model schema name 'Tenant' "):
        schema_translate_map({"Tenant": "acme"})


def test_the_retailers_map_moves_a_tenant_and_keeps_the_shared_schemas() -> None:
    assert translate_map(tenant="t_new") == {
        "tenant_kct": "t_new",
        "tenant_shared": "tenant_shared",
        "analytics": "analytics",
    }
    assert set(LEGACY_LAYOUT.values()) == {"public"}
    with pytest.raises(InvalidIdentifier):
        translate_map(tenant="t_new; DROP SCHEMA public")


def test_every_legacy_table_has_a_model_in_its_target_schema() -> None:
    mapped = {table.name: table.schema for table in Base.metadata.tables.values()}
    assert mapped == dict(TABLE_SCHEMAS)
    assert len(mapped) == 11
