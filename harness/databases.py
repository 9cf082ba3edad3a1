"""Creating, cloning and dropping databases on a running server.

Scenarios each get a fresh copy of the legacy database cloned from a template,
which is much faster than seeding again. ``CREATE DATABASE … TEMPLATE`` needs
the template to have no other connections, so nothing keeps one open.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from harness.dsn import redact, with_database
from harness.errors import InfrastructureError

__all__ = ["create_database", "database_exists", "drop_database"]


def _admin(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(with_database(dsn, "postgres"), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise InfrastructureError(
            f"cannot connect to {redact(with_database(dsn, 'postgres'))}: "
            f"{redact(str(exc)).strip()}; check that the server is running"
        ) from None


def create_database(dsn: str, name: str, *, template: str | None = None) -> str:
    """Create ``name`` on the server of ``dsn``; return a DSN for it."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        # FILE_COPY copies the template's files instead of WAL-logging every block:
        # much faster for a seeded template, at the cost of two checkpoints.
        query = sql.SQL("{} TEMPLATE {} STRATEGY FILE_COPY").format(query, sql.Identifier(template))
    with _admin(dsn) as conn:
        conn.execute(query)
    return with_database(dsn, name)


def drop_database(dsn: str, name: str) -> None:
    """Drop ``name``, ending any session still in it (PgBouncer's server connections too)."""
    with _admin(dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def database_exists(dsn: str, name: str) -> bool:
    with _admin(dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None
