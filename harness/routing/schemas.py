"""Tenants as schemas: the names a schema may have, and the only ways they reach SQL.

"A new tenant is a new schema": code names schemas only through a translate
map the caller configures, so the same models serve a database before a move
(everything in ``public``), after it, and for any later tenant.

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
    "schema_translate_map",
    "set_local_search_path",
    "validate_identifier",
]

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


def schema_translate_map(schemas: Mapping[str, str]) -> dict[str, str]:
    """SQLAlchemy ``schema_translate_map`` from the schemas models name to real ones, checked.

    Models name a schema per role (say ``tenant`` for one tenant's tables and
    ``shared`` for what every tenant reads); the map says where each role's
    tables really are for one session: a new tenant is a new map, not new code.
    """
    return {
        validate_identifier(model, what="model schema"): validate_identifier(
            real, what=f"{model} schema"
        )
        for model, real in schemas.items()
    }


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
