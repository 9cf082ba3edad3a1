"""SQLAlchemy 2 on top of the router: a writer and a reader engine, and a Session that picks.

The plan's ``SchemaAwareClient`` keeps one Prisma client per schema, each with
its own pool; here there is one engine per role, and the schema is a
per-session ``schema_translate_map``, so a new tenant is a new schema and a
new map, with no new pool and no code change.

Routing follows SQLAlchemy's documented ``get_bind`` recipe, with the
:class:`~harness.routing.Database` deciding what "the reader" means right now:
flushes, INSERT/UPDATE/DELETE, ``SELECT ... FOR UPDATE`` and raw ``text()`` SQL
(whose intent the session cannot see) go to the writer; plain ``select()`` goes
to the replica while it is usable, and to a read-only writer connection
otherwise. After a commit that wrote, the session keeps the primary's WAL
position and reads from the replica only once it has replayed that far.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Select, TextClause
from sqlalchemy.sql.dml import UpdateBase

from harness.connections import Conn, connect
from harness.errors import UsageError
from harness.routing.database import Database
from harness.routing.errors import UNAVAILABLE_KINDS, classify
from harness.routing.pools import PoolConfig
from harness.routing.schemas import schema_translate_map, validate_identifier
from harness.routing.token import ReadToken

__all__ = ["OrmRouting", "RoutingSession"]

_Binds = tuple[Engine, Engine, Engine]


def _engine(url: str, config: PoolConfig, *, read_only: bool) -> Engine:
    def creator() -> Conn:
        # prepared statements off: PgBouncer's transaction pooling cannot keep them
        return connect(
            url,
            timeout=config.connect_timeout,
            application_name=config.application_name,
            autocommit=False,
        )

    # QueuePool keeps up to pool_size connections; no overflow, so max_size is a hard
    # cap as in psycopg_pool, and pool_timeout is the plan's 2 s connection timeout.
    engine = create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_size=config.max_size,
        max_overflow=0,
        pool_timeout=config.timeout,
    )
    if read_only:
        # BEGIN READ ONLY on every transaction: a write sent to the reader by mistake
        # fails the same way whether the replica or the writer serves it.
        event.listen(engine, "connect", lambda dbapi_conn, _record: _set_read_only(dbapi_conn))
    return engine


def _set_read_only(dbapi_conn: Any) -> None:
    dbapi_conn.read_only = True


def _writes(clause: ClauseElement | None) -> bool:
    if clause is None or isinstance(clause, UpdateBase | TextClause):
        return True
    return isinstance(clause, Select) and clause._for_update_arg is not None


class OrmRouting:
    """A writer and a reader engine for a :class:`Database`, and the sessions that route.

    ``schemas`` translates the schemas the models name to real ones for every
    session; ``schema_per_tenant`` is the one model schema that holds a single
    tenant's tables, which ``session(tenant=...)`` points at that tenant's schema.
    """

    def __init__(
        self,
        db: Database,
        *,
        schemas: Mapping[str, str] | None = None,
        schema_per_tenant: str | None = None,
    ) -> None:
        self.db = db
        self.schemas = schema_translate_map(schemas or {})
        self.schema_per_tenant = (
            None
            if schema_per_tenant is None
            else validate_identifier(schema_per_tenant, what="model schema")
        )
        self.writer_engine = _engine(db.writer_url, db.writer_config, read_only=False)
        self.reader_engine = _engine(
            db.reader_url or db.writer_url, db.reader_config, read_only=True
        )
        self._fallback_engine = self.writer_engine.execution_options(postgresql_readonly=True)
        self._binds: dict[tuple[tuple[str, str], ...], _Binds] = {}
        if db.reader_url is not None:
            self._watch_replica(self.reader_engine)
            # Connections from before an outage are dead: drop them when it is over.
            db.on_replica_up(self.reader_engine.dispose)

    def _watch_replica(self, engine: Engine) -> None:
        db = self.db

        def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            db.track_replica_connection(dbapi_conn, active=True)

        def checkin(dbapi_conn: Any, _record: Any) -> None:
            if dbapi_conn is not None:
                db.track_replica_connection(dbapi_conn, active=False)

        def handle_error(context: Any) -> None:
            error = context.original_exception
            if context.is_disconnect or classify(error) in UNAVAILABLE_KINDS:
                db.report_replica_failure(error)

        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)
        event.listen(engine, "handle_error", handle_error)

    def binds(self, schemas: Mapping[str, str]) -> _Binds:
        """(writer, reader, read-only writer) engines translating schemas as ``schemas`` says."""
        key = tuple(sorted(schemas.items()))
        if key not in self._binds:
            options = {"schema_translate_map": dict(schemas)} if schemas else {}
            self._binds[key] = (
                self.writer_engine.execution_options(**options),
                self.reader_engine.execution_options(**options),
                self._fallback_engine.execution_options(**options),
            )
        return self._binds[key]

    def session(self, *, tenant: str | None = None, **kwargs: Any) -> RoutingSession:
        """A session over this router's schemas; ``tenant`` names the tenant's schema."""
        schemas = dict(self.schemas)
        if tenant is not None:
            if self.schema_per_tenant is None:
                raise UsageError(
                    f"session(tenant={tenant!r}) needs to know which schema the models use for "
                    "one tenant's tables: pass OrmRouting(db, schema_per_tenant=...)"
                )
            schemas[self.schema_per_tenant] = validate_identifier(tenant, what="tenant schema")
        return RoutingSession(self, schemas=schemas, **kwargs)

    def dispose(self) -> None:
        self.writer_engine.dispose()
        self.reader_engine.dispose()


class RoutingSession(Session):
    """A Session whose reads go to the replica and whose writes go to the writer.

    A unit of work: after a commit that wrote, :attr:`read_token` holds the primary's
    WAL position, and reads wait (bounded) for the replica to replay it, else
    go to the writer.
    """

    def __init__(self, routing: OrmRouting, *, schemas: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routing = routing
        self._writer, self._reader, self._fallback = routing.binds(schemas)
        self._wrote = False
        self.read_token = ReadToken()

    def get_bind(
        self,
        mapper: Any = None,
        *,
        clause: ClauseElement | None = None,
        **kw: Any,
    ) -> Engine | Connection:
        if self._flushing or self._wrote or _writes(clause):
            # Reads after a write in the same transaction must see it: the writer's
            # transaction is the only place the uncommitted rows exist.
            self._wrote = True
            return self._writer
        db, token = self.routing.db, self.read_token
        if token.position_unknown or not db.replica_usable:
            return self._fallback
        if token.lsn is not None:
            if not db.wait_for_replay(token.lsn):
                return self._fallback
            token.lsn = None  # replayed once is replayed for good on this replica
        return self._reader


@event.listens_for(RoutingSession, "after_commit")
def _after_commit(session: Session) -> None:
    if not isinstance(session, RoutingSession) or not session._wrote:
        return
    session._wrote = False
    try:
        lsn = session.routing.db.current_lsn()
    except psycopg.Error:  # the commit stands; only where to read it is unknown
        lsn = None
    session.read_token.wrote(lsn)


@event.listens_for(RoutingSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    if isinstance(session, RoutingSession):
        session._wrote = False
