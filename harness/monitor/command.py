"""``harness status``: health, connections, slow queries, schemas, lag and PgBouncer at a glance.

Exit codes follow the rest of the CLI: 0 all is well, 1 everything answered
but something is unhealthy (the writer is a standby), 2 a DSN given could not
be reached (the writer: nothing is printed; a reader or PgBouncer: the report
is printed, with the problem, so the rest is still visible).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from harness.dsn import redact
from harness.monitor.collect import Status, Unreachable, collect_status

__all__ = ["add_parser", "render_text", "run"]


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``status`` on the CLI's subparsers; its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "status",
        help="show health, connections, slow queries, schema sizes, replication lag and "
        "PgBouncer pools",
        description="Show the writer's and reader's health, connections by application_name "
        "and state, slow queries, per-schema table sizes and rows, replication lag, and "
        "PgBouncer's SHOW POOLS / SHOW STATS. Exit 2 if a DSN given cannot be reached.",
    )
    parser.add_argument("--dsn", required=True, help="the writer: the primary or its PgBouncer")
    parser.add_argument("--reader-dsn", help="the reader: the replica or its PgBouncer")
    parser.add_argument(
        "--pgbouncer-dsn",
        action="extend",
        nargs="+",
        default=[],
        metavar="URL",
        help="a PgBouncer admin console (database 'pgbouncer'); give several or repeat",
    )
    parser.add_argument(
        "--schema", action="append", help="only this schema in the schema stats; repeatable"
    )
    parser.add_argument("--slow", type=int, default=10, help="slow queries to list (10)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds each connection and query may take"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        status = collect_status(
            args.dsn,
            reader_dsn=args.reader_dsn,
            pgbouncer_dsns=args.pgbouncer_dsn,
            schemas=args.schema,
            slow=args.slow,
            timeout=args.timeout,
        )
    except Unreachable as exc:
        print(f"harness status: {redact(str(exc))}", file=err)
        return 2
    if args.json:
        print(json.dumps(status.to_json(), indent=1, sort_keys=True), file=out)
    else:
        print(render_text(status), file=out)
    for problem in status.problems:
        print(f"harness status: {problem}", file=err)
    unreachable = [s for s in status.servers if not s.reachable] + [
        b for b in status.pgbouncers if not b["reachable"]
    ]
    if unreachable:
        return 2
    return 0 if all(status.health.values()) else 1


# -- text ------------------------------------------------------------------------------
POOL_COLUMNS = ("database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used",
                "maxwait", "pool_mode")  # fmt: skip
STATS_COLUMNS = ("database", "total_xact_count", "total_query_count", "avg_xact_time",
                 "avg_query_time", "avg_wait_time")  # fmt: skip


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  ") -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(indent + line.rstrip() for line in lines)


def _ok(health: dict[str, bool], side: str) -> str:
    return "ok" if health.get(side) else "DOWN"


def render_text(status: Status) -> str:
    """A report for a person: one section per subject, tables aligned."""
    parts = [f"health: write {_ok(status.health, 'write')}, read {_ok(status.health, 'read')}"]
    for server in status.servers:
        if not server.reachable:
            parts.append(f"\n{server.role} {server.dsn}: unreachable ({server.error})")
            continue
        kind = "standby" if server.in_recovery else "primary"
        parts.append(f"\n{server.role} {server.dsn}: PostgreSQL {server.version}, {kind}")
        parts.append("connections by application_name and state:")
        parts.append(
            _table(
                ("application_name", "state", "count"),
                [(c["application_name"], c["state"], c["connections"]) for c in server.connections],
            )
        )
        if server.slow_source == "pg_stat_statements":
            parts.append("slowest statements (pg_stat_statements, by mean time):")
            rows = [(q["mean_ms"], q["calls"], q["query"]) for q in server.slow_queries]
            parts.append(_table(("mean ms", "calls", "query"), _oneline(rows)))
        else:
            parts.append("running queries (pg_stat_activity; pg_stat_statements not installed):")
            rows = [(f"{q['seconds']:.3f}", q["state"], q["query"]) for q in server.slow_queries]
            parts.append(_table(("seconds", "state", "query"), _oneline(rows)))
    repl = status.replication
    if repl:
        if repl.get("lag_bytes") is None:
            parts.append("\nreplication lag: unknown (no reader given, no standby on the writer)")
        else:
            parts.append(
                f"\nreplication lag: {_size(repl['lag_bytes'])}, {repl['lag_seconds']:.2f} sec"
            )
    if status.schemas:
        parts.append("\nschemas (on the writer; live rows are the statistics' estimate):")
        schema_rows: list[tuple[str, ...]] = []
        for schema in status.schemas:
            size, live = _size(schema["total_bytes"]), f"{schema['live_rows']:,}"
            schema_rows.append((schema["schema"], str(schema["tables"]), size, live))
            for table in schema["detail"]:
                size, live = _size(table["total_bytes"]), f"{table['live_rows']:,}"
                schema_rows.append(("  " + table["table"], "", size, live))
        parts.append(_table(("schema / table", "tables", "size", "live rows"), schema_rows))
    for bouncer in status.pgbouncers:
        if not bouncer["reachable"]:
            parts.append(f"\nPgBouncer {bouncer['dsn']}: unreachable ({bouncer['error']})")
            continue
        parts.append(f"\nPgBouncer {bouncer['dsn']}: SHOW POOLS")
        pools = bouncer["pools"]
        parts.append(_table(POOL_COLUMNS, [[p.get(c) for c in POOL_COLUMNS] for p in pools]))
        parts.append("SHOW STATS")
        stats = bouncer["stats"]
        parts.append(_table(STATS_COLUMNS, [[r.get(c) for c in STATS_COLUMNS] for r in stats]))
    if status.problems:
        parts.append("\nproblems:")
        parts.extend(f"  - {p}" for p in status.problems)
    return "\n".join(parts)


def _oneline(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[:-1], " ".join(str(r[-1] or "").split())[:100]) for r in rows]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.monitor.command``: the status command on its own."""
    parser = argparse.ArgumentParser(prog="harness")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
