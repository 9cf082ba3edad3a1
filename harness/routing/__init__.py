"""Read/write splitting for the retailer's application: the plan's Phase 2, 3 and 5 in Python.

``Database`` holds a writer and a reader pool and routes reads to the replica
while it is up and close enough; ``classify`` names every failure with one of a
few ``ErrorKind`` values that monitoring and the load tests share. The
SQLAlchemy side (engines, a routing Session, the retailer's models) lives in
``harness.routing.orm`` and ``harness.routing.models``, imported on demand.
"""

from __future__ import annotations

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
from harness.routing.replica import Lsn, ReplicaPolicy, ReplicaState
from harness.routing.retry import CommitOutcomeUnknown, RetryPolicy, run_transaction
from harness.routing.schemas import (
    LEGACY_LAYOUT,
    TABLE_SCHEMAS,
    schema_translate_map,
    set_local_search_path,
    validate_identifier,
)
from harness.routing.unit import UnitOfWork

__all__ = [
    "LEGACY_LAYOUT",
    "READER_POOL",
    "TABLE_SCHEMAS",
    "WRITER_POOL",
    "CommitOutcomeUnknown",
    "Database",
    "ErrorKind",
    "InvalidIdentifier",
    "Lsn",
    "PoolConfig",
    "PoolExhausted",
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
