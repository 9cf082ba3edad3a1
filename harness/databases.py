"""Creating, cloning and dropping databases on a running server.

Scenarios each get a fresh copy of the legacy database cloned from a template,
which is much faster than seeding again. ``CREATE DATABASE … TEMPLATE`` needs
the template to have no other connections, so nothing keeps one open.
"""

from __future__ import annotations

import os
import secrets

import psycopg
from psycopg import sql

from harness.connections import Conn, connect
from harness.dsn import redact, with_database
from harness.errors import UsageError

# connect is harness.connections.connect, named here too for the callers that import it from here
__all__ = ["connect", "create_database", "database_exists", "drop_database", "unique_name"]


def _admin(dsn: str) -> Conn:
    return connect(with_database(dsn, "postgres"), timeout=5)


def create_database(dsn: str, name: str, *, template: str | None = None) -> str:
    """Create ``name`` on the server of ``dsn``; return a DSN for it."""
    # FILE_COPY copies the template's files instead of WAL-logging every block (the
    # default since PostgreSQL 15): several times faster here, for one checkpoint.
    query = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
        sql.Identifier(name), sql.Identifier(template or "template1")
    )
    with _admin(dsn) as conn:
        try:
            conn.execute(query)
        except psycopg.errors.DuplicateDatabase:
            # Never fall back to reusing or replacing it: it may be someone's data.
            raise UsageError(
                f"database {name!r} already exists on {redact(with_database(dsn, 'postgres'))}; "
                "pgcutover only works in databases it creates and never changes or drops one "
                "it did not create: drop or rename it yourself, or use a server without it"
            ) from None
    return with_database(dsn, name)


def unique_name(prefix: str) -> str:
    """A database name no one else uses: the prefix, this process and a random suffix."""
    return f"{prefix[:40]}_{os.getpid()}_{secrets.token_hex(4)}"


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
