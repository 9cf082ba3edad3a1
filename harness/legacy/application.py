"""The retailer's application as the router sees it: where its tables live, and its names.

The plan gives every table a target schema (``tenant_shared`` for the catalog,
``tenant_kct`` for KCT Menswear's customers and orders, ``analytics`` for the
derived tables) and promises "a new tenant is a new schema". The routing
library knows none of this: the retailer's load tests and scenarios take it
from here and hand it to ``harness.routing`` as configuration. Its SQLAlchemy
models are in :mod:`harness.legacy.models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from harness.routing import READER_POOL, WRITER_POOL, Database, schema_translate_map

__all__ = [
    "ANALYTICS",
    "HEALTH_APPLICATION_NAME",
    "LEGACY_LAYOUT",
    "RETAILER_READER_POOL",
    "RETAILER_WRITER_POOL",
    "TABLE_SCHEMAS",
    "TENANT_KCT",
    "TENANT_SHARED",
    "database",
    "database_from_env",
    "translate_map",
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


def translate_map(
    *, tenant: str = TENANT_KCT, shared: str = TENANT_SHARED, analytics: str = ANALYTICS
) -> dict[str, str]:
    """Where the models' three schemas really are: ``tenant`` holds one tenant's tables.

    The catalog (``shared``) and ``analytics`` are shared by all tenants.
    """
    return schema_translate_map({TENANT_KCT: tenant, TENANT_SHARED: shared, ANALYTICS: analytics})


#: The retailer's database before the migration: every table in public.
LEGACY_LAYOUT: Mapping[str, str] = translate_map(
    tenant="public", shared="public", analytics="public"
)

# The Next.js application's names, so that pg_stat_activity, PgBouncer's SHOW
# CLIENTS and ``harness status`` show its connections by role.
RETAILER_WRITER_POOL = replace(WRITER_POOL, application_name="kct_nextjs_writer")
RETAILER_READER_POOL = replace(READER_POOL, application_name="kct_nextjs_reader")
HEALTH_APPLICATION_NAME = "kct_nextjs_health"


def _named(options: dict[str, Any]) -> dict[str, Any]:
    options.setdefault("writer_pool", RETAILER_WRITER_POOL)
    options.setdefault("reader_pool", RETAILER_READER_POOL)
    options.setdefault("health_application_name", HEALTH_APPLICATION_NAME)
    return options


def database(writer_url: str, reader_url: str | None = None, **options: Any) -> Database:
    """The retailer's router: ``Database`` with the application's pool names."""
    return Database(writer_url, reader_url, **_named(options))


def database_from_env(environ: Mapping[str, str] | None = None, **options: Any) -> Database:
    """The retailer's router from ``DATABASE_URL`` and ``DATABASE_READONLY_URL``."""
    return Database.from_env(environ, **_named(options))
