"""Read/write splitting for any application on PostgreSQL with a streaming replica.

``Database`` holds a writer and a reader pool and routes reads to the replica
while it is up and close enough; a :class:`UnitOfWork` (or an ORM session)
reads its own writes through a :class:`ReadToken`; ``classify`` names every
failure with one of a few ``ErrorKind`` values that monitoring and load tests
share. Tenants are schemas the caller names (``schema_translate_map``,
``set_local_search_path``). The SQLAlchemy side lives in
``harness.routing.orm``, imported on demand.

Importing this package loads the router only: no gate, runner, catalog or
cluster code.
"""

from __future__ import annotations

from harness.connections import Lsn
from harness.routing.database import Database
from harness.routing.errors import (
    ErrorKind,
    InvalidIdentifier,
    PoolExhausted,
    ReplicaUnavailable,
    RoutingError,
    WriterUnavailable,
    classify,
)
from harness.routing.pools import READER_POOL, WRITER_POOL, PoolConfig, urls_from_env
from harness.routing.replica import ReplicaPolicy, ReplicaState
from harness.routing.retry import CommitOutcomeUnknown, RetryPolicy, run_transaction
from harness.routing.schemas import (
    schema_translate_map,
    set_local_search_path,
    validate_identifier,
)
from harness.routing.token import ReadToken
from harness.routing.unit import UnitOfWork

__all__ = [
    "READER_POOL",
    "WRITER_POOL",
    "CommitOutcomeUnknown",
    "Database",
    "ErrorKind",
    "InvalidIdentifier",
    "Lsn",
    "PoolConfig",
    "PoolExhausted",
    "ReadToken",
    "ReplicaPolicy",
    "ReplicaState",
    "ReplicaUnavailable",
    "RetryPolicy",
    "RoutingError",
    "UnitOfWork",
    "WriterUnavailable",
    "classify",
    "run_transaction",
    "schema_translate_map",
    "set_local_search_path",
    "urls_from_env",
    "validate_identifier",
]
