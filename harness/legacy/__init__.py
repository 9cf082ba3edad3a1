"""The retailer's database before the migration, and the ways to put it into a server.

``seed`` loads either the built-in single-schema database (the plan's 37
products, 544 variants and 3,369 customers, times ``scale``) or the user's own
dump into an empty database, and reports what it loaded. The retailer's
application as the router sees it (schema map, pool names, SQLAlchemy models)
is in ``application`` and ``models``.
"""

from __future__ import annotations

from harness.legacy.data import LEGACY_COUNTS, counts
from harness.legacy.loader import SeedReport, seed

__all__ = ["LEGACY_COUNTS", "SeedReport", "counts", "seed"]
