"""What ``harness status`` looks at: the plan's ``DatabaseMonitor``, done against the catalog.

The plan's ``getSchemaStats`` reads a ``tablename`` column that
``pg_stat_user_tables`` does not have (it is ``relname``) and sizes tables with
``pg_total_relation_size(schemaname||'.'||tablename)``, which breaks on any name
that needs quoting and resolves through search_path. Here a table is always
addressed by its OID (``relid``), and nothing is concatenated into SQL.

Every query runs with a deadline: behind PgBouncer 1.18 a query for a server
that is down waits in PgBouncer's queue (``query_wait_timeout``, 120 sec by
default) rather than failing.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from harness.connections import Conn, Lsn, bounded, connect, describe, standby_refusal
from harness.dsn import redact
from harness.errors import InfrastructureError

__all__ = ["ServerStatus", "Status", "Unreachable", "collect_status"]

APPLICATION_NAME = "pgcutover_status"
Record = dict[str, Any]


class Unreachable(InfrastructureError):
    """The writer named by ``--dsn`` did not answer: there is nothing to report on."""


@dataclass
class ServerStatus:
    role: str
    dsn: str
    reachable: bool = False
    error: str | None = None
    in_recovery: bool | None = None
    version: str | None = None
    connections: list[Record] = field(default_factory=list)
    slow_queries: list[Record] = field(default_factory=list)
    slow_source: str | None = None


@dataclass
class Status:
    health: dict[str, bool]
    servers: list[ServerStatus]
    schemas: list[Record] = field(default_factory=list)
    replication: Record = field(default_factory=dict)
    pgbouncers: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> Record:
        return _plain(asdict(self))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    """Values JSON can carry: numbers stay numbers, times become ISO text or seconds."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Lsn):
        return str(value)
    return value


def _records(
    conn: Conn, query: str | sql.Composed, params: Sequence[Any] = (), *, timeout: float
) -> list[Record]:
    with bounded(conn, timeout=timeout):
        # prepare=False: PgBouncer's admin console speaks only the simple query
        # protocol, and any server behind a transaction-mode PgBouncer 1.18 loses
        # prepared statements between transactions.
        cur = conn.execute(query, tuple(params) or None, prepare=False)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


CONNECTIONS = """
SELECT coalesce(nullif(application_name, ''), '(none)') AS application_name,
       -- pg_stat_activity lost its "waiting" column in 9.6; a backend waiting on a
       -- lock is now an active one whose wait_event_type is 'Lock'
       CASE WHEN state = 'active' AND wait_event_type = 'Lock' THEN 'waiting'
            ELSE coalesce(state, 'unknown') END AS state,
       count(*)::int AS connections
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

ACTIVE_QUERIES = """
SELECT pid, coalesce(nullif(application_name, ''), '(none)') AS application_name,
       state, wait_event_type,
       extract(epoch FROM clock_timestamp() - query_start)::float8 AS seconds,
       left(query, 200) AS query
  FROM pg_stat_activity
 WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 ORDER BY query_start
 LIMIT %s
"""

SCHEMA_TABLES = """
SELECT s.schemaname AS schema, s.relname AS table,
       pg_total_relation_size(s.relid) AS total_bytes,
       s.n_live_tup AS live_rows
  FROM pg_stat_user_tables s
 WHERE %s::text[] IS NULL OR s.schemaname = ANY(%s::text[])
 ORDER BY s.schemaname, s.relname
"""


def _slow_queries(conn: Conn, *, limit: int, timeout: float) -> tuple[str, list[Record]]:
    """From pg_stat_statements where this database has it, else what runs right now."""
    found = _records(
        conn,
        "SELECT n.nspname AS schema, current_setting('server_version_num')::int AS version "
        "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'",
        timeout=timeout,
    )
    if found:
        # PostgreSQL 13 split total_time into planning and execution time.
        mean, total = (
            ("mean_exec_time", "total_exec_time")
            if found[0]["version"] >= 130000
            else ("mean_time", "total_time")
        )
        query = sql.SQL(
            "SELECT calls, round({mean}::numeric, 3) AS mean_ms, round({total}::numeric, 3) "
            "AS total_ms, rows, left(query, 200) AS query FROM {schema}.pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY {mean} DESC LIMIT %s"
        ).format(
            mean=sql.Identifier(mean),
            total=sql.Identifier(total),
            schema=sql.Identifier(found[0]["schema"]),
        )
        try:
            return "pg_stat_statements", _records(conn, query, (limit,), timeout=timeout)
        except psycopg.errors.ObjectNotInPrerequisiteState:
            pass  # created in this database but not in shared_preload_libraries
    rows = _records(conn, ACTIVE_QUERIES, (limit,), timeout=timeout)
    for row in rows:
        row["query"] = redact(row["query"] or "")
    return "pg_stat_activity", rows


def _server(role: str, dsn: str, *, slow: int, timeout: float) -> tuple[ServerStatus, Conn | None]:
    status = ServerStatus(role=role, dsn=redact(dsn))
    try:
        conn = connect(dsn, application_name=APPLICATION_NAME, timeout=timeout)
    except psycopg.Error as exc:
        status.error = describe(exc)
        return status, None
    try:
        (info,) = _records(
            conn,
            "SELECT pg_is_in_recovery() AS in_recovery, current_setting('server_version') AS v",
            timeout=timeout,
        )
        status.in_recovery, status.version = info["in_recovery"], info["v"]
        status.connections = _records(conn, CONNECTIONS, timeout=timeout)
        status.slow_source, status.slow_queries = _slow_queries(conn, limit=slow, timeout=timeout)
    except psycopg.Error as exc:
        status.error = describe(exc)
        conn.close()
        return status, None
    status.reachable = True
    return status, conn


def _schemas(conn: Conn, only: Sequence[str] | None, *, timeout: float) -> list[Record]:
    wanted = list(only) if only else None
    tables = _records(conn, SCHEMA_TABLES, (wanted, wanted), timeout=timeout)
    by_schema: dict[str, Record] = {}
    for table in tables:
        entry = by_schema.setdefault(
            table["schema"],
            {
                "schema": table["schema"],
                "tables": 0,
                "total_bytes": 0,
                "live_rows": 0,
                "detail": [],
            },
        )
        entry["tables"] += 1
        entry["total_bytes"] += table["total_bytes"]
        entry["live_rows"] += table["live_rows"]
        entry["detail"].append({k: table[k] for k in ("table", "total_bytes", "live_rows")})
    return list(by_schema.values())


def _replication(writer: Conn, reader: Conn | None, *, timeout: float) -> Record:
    (primary,) = _records(
        writer,
        "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn",
        timeout=timeout,
    )
    standbys = _records(
        writer,
        "SELECT application_name, state, sync_state,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,"
        " extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds"
        " FROM pg_stat_replication ORDER BY application_name",
        timeout=timeout,
    )
    result: Record = {"standbys": standbys, "lag_bytes": None, "lag_seconds": None}
    if reader is not None:
        (replica,) = _records(
            reader,
            # Seconds since the last replayed commit mean nothing on an idle primary:
            # count them only while the replica has received WAL it has not replayed.
            "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn()::text AS lsn,"
            " CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()"
            " THEN 0 ELSE extract(epoch FROM clock_timestamp()"
            " - pg_last_xact_replay_timestamp())::float8 END AS seconds",
            timeout=timeout,
        )
        if replica["in_recovery"] and replica["lsn"] and primary["lsn"]:
            lag = Lsn.parse(primary["lsn"]) - Lsn.parse(replica["lsn"])
            result["lag_bytes"] = max(0, lag)
            result["lag_seconds"] = replica["seconds"] or 0.0
    elif standbys:
        result["lag_bytes"] = max(s["replay_lag_bytes"] or 0 for s in standbys)
        result["lag_seconds"] = max(s["replay_lag_seconds"] or 0.0 for s in standbys)
    return result


def _pgbouncer(dsn: str, *, timeout: float) -> Record:
    record: Record = {
        "dsn": redact(dsn),
        "reachable": False,
        "error": None,
        "pools": [],
        "stats": [],
    }
    try:
        with connect(dsn, application_name=APPLICATION_NAME, timeout=timeout) as conn:
            record["pools"] = _records(conn, "SHOW POOLS", timeout=timeout)
            record["stats"] = _records(conn, "SHOW STATS", timeout=timeout)
    except psycopg.Error as exc:
        record["error"] = describe(exc)
        return record
    record["reachable"] = True
    return record


def collect_status(
    dsn: str,
    *,
    reader_dsn: str | None = None,
    pgbouncer_dsns: Iterable[str] = (),
    schemas: Sequence[str] | None = None,
    slow: int = 10,
    timeout: float = 5.0,
) -> Status:
    """Look at the writer, the reader and each PgBouncer; raise Unreachable if the writer is out."""
    writer, writer_conn = _server("writer", dsn, slow=slow, timeout=timeout)
    if writer_conn is None:
        raise Unreachable(
            f"cannot connect to the writer at {redact(dsn)}: {writer.error}; check --dsn and "
            "that PostgreSQL (or PgBouncer) is running and accepts connections"
        )
    status = Status(health={"write": not writer.in_recovery}, servers=[writer])
    reader_conn: Conn | None = None
    try:
        if reader_dsn:
            reader, reader_conn = _server("reader", reader_dsn, slow=slow, timeout=timeout)
            status.servers.append(reader)
            status.health["read"] = reader.reachable
            if not reader.reachable:
                status.problems.append(f"reader at {reader.dsn} is unreachable: {reader.error}")
        else:
            status.health["read"] = status.health["write"]  # reads go to the writer
        if writer.in_recovery:
            status.problems.append(
                standby_refusal(f"writer at {writer.dsn}", fix="point --dsn at the primary")
            )
        status.schemas = _schemas(writer_conn, schemas, timeout=timeout)
        status.replication = _replication(writer_conn, reader_conn, timeout=timeout)
    except psycopg.Error as exc:
        status.problems.append(f"monitoring queries failed: {describe(exc)}")
    finally:
        writer_conn.close()
        if reader_conn is not None:
            reader_conn.close()
    for bouncer_dsn in pgbouncer_dsns:
        record = _pgbouncer(bouncer_dsn, timeout=timeout)
        status.pgbouncers.append(record)
        if not record["reachable"]:
            status.problems.append(
                f"PgBouncer admin console at {record['dsn']} is unreachable: {record['error']}"
            )
    return status
