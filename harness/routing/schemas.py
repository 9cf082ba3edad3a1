"""Where each of the retailer's tables lives, and the names a tenant's schema may have.

The plan gives every table a target schema (``tenant_shared`` for the catalog,
``tenant_kct`` for KCT Menswear's customers and orders, ``analytics`` for the
derived tables) and promises "a new tenant is a new schema". Code therefore
names schemas only through a translate map: the same models serve the legacy
layout (everything in ``public``), the target layout, and any later tenant.

A schema name comes from configuration, sometimes from a request; it is checked
here against the plain-identifier rule and then only ever composed as an
identifier (``psycopg.sql.Identifier`` or SQLAlchemy's quoting), never pasted
into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from psycopg import sql

from harness.routing.errors import InvalidIdentifier

__all__ = [
    "ANALYTICS",
    "LEGACY_LAYOUT",
    "TABLE_SCHEMAS",
    "TENANT_KCT",
    "TENANT_SHARED",
    "schema_translate_map",
    "set_local_search_path",
    "validate_identifier",
]

TENANT_SHARED = "tenant_shared"
TENANT_KCT = "tenant_kct"
ANALYTICS = "analytics"

#: The plan's target layout (Phase 1, plus order_items which follows its orders).
TABLE_SCHEMAS: Mapping[str, str] = {
    "products": TENANT_SHARED,
    "product_variants": TENANT_SHARED,
    "suppliers": TENANT_SHARED,
    "collections": TENANT_SHARED,
    "customers": TENANT_KCT,
    "orders": TENANT_KCT,
    "order_items": TENANT_KCT,
    "appointments": TENANT_KCT,
    "measurements": TENANT_KCT,
    "customer_insights": ANALYTICS,
    "product_recommendations": ANALYTICS,
}

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
# NAMEDATALEN is 64 in every PostgreSQL build we meet; longer names are silently
# truncated to 63 bytes, so two long tenant names could land on the same schema.
_MAX_BYTES = 63


def validate_identifier(name: str, *, what: str = "schema") -> str:
    """Return ``name`` if it is a plain lowercase identifier, else raise InvalidIdentifier."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifier(
            f"{what} name {name!r} is not a valid identifier: use lowercase letters, digits "
            "and underscores, starting with a letter or an underscore"
        )
    if len(name.encode()) > _MAX_BYTES:
        raise InvalidIdentifier(
            f"{what} name {name!r} is {len(name.encode())} bytes long; PostgreSQL keeps "
            f"only the first {_MAX_BYTES}, so use a shorter name"
        )
    # PostgreSQL reserves the pg_ prefix for system schemas (CREATE SCHEMA refuses it).
    if name.startswith("pg_"):
        raise InvalidIdentifier(
            f"{what} name {name!r} starts with 'pg_', which PostgreSQL reserves for "
            "system schemas; choose another prefix"
        )
    return name


def schema_translate_map(
    *, tenant: str = TENANT_KCT, shared: str = TENANT_SHARED, analytics: str = ANALYTICS
) -> dict[str, str]:
    """SQLAlchemy ``schema_translate_map`` from the models' schemas to real ones.

    ``tenant`` is the schema holding one tenant's customers and orders; the
    catalog (``shared``) and ``analytics`` are shared by all tenants.
    """
    return {
        TENANT_KCT: validate_identifier(tenant, what="tenant schema"),
        TENANT_SHARED: validate_identifier(shared, what="shared schema"),
        ANALYTICS: validate_identifier(analytics, what="analytics schema"),
    }


#: The retailer's database before the migration: every table in public.
LEGACY_LAYOUT: Mapping[str, str] = schema_translate_map(
    tenant="public", shared="public", analytics="public"
)


def set_local_search_path(schemas: Sequence[str]) -> sql.Composed:
    """``SET LOCAL search_path`` for the current transaction only.

    A plain ``SET`` stays on the server connection after the transaction; behind
    PgBouncer in transaction pooling (any version) that connection serves the
    next client, who then resolves unqualified names in our schema. ``SET
    LOCAL`` ends with the transaction, so nothing leaks.
    """
    if not schemas:
        raise InvalidIdentifier("search_path needs at least one schema")
    names = [sql.Identifier(validate_identifier(s)) for s in schemas]
    return sql.SQL("SET LOCAL search_path TO {}").format(sql.SQL(", ").join(names))
