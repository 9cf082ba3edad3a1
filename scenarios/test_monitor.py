"""``harness status`` against the real cluster, direct and through PgBouncer.

The command is driven through ``add_parser`` on a fresh argparse parser, the
way ``harness.cli`` wires it, with stdout and stderr captured.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from typing import Any

import pytest

from harness.cluster import Cluster
from harness.cluster.processes import free_port
from harness.legacy.application import database
from harness.monitor.command import add_parser
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import LegacyDatabase

SECRET = "s3cr3t-Pa55"


def status(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="harness")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def status_json(*argv: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = status(*argv, "--json")
    report: dict[str, Any] = json.loads(out)
    return code, report, err


def server(report: dict[str, Any], role: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in report["servers"] if s["role"] == role]
    assert len(found) == 1, found
    return found[0]


def test_status_reports_health_connections_queries_schemas_lag_and_pools(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    eps = legacy_database.endpoints
    with connect(eps.primary) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        admin.execute("ANALYZE")
    cluster.wait_for_replica()
    with database(eps.primary, eps.replica) as db:  # direct: application_name as given
        with db.writer() as conn:
            conn.execute("SELECT count(*) FROM order_items")
        assert db.fetchone("SELECT count(*) FROM orders") is not None
        for dsn in (eps.writer, eps.reader):  # so that PgBouncer has a pool for this database
            with connect(dsn, prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
        code, report, err = status_json(
            "--dsn", eps.primary, "--reader-dsn", eps.replica,
            "--pgbouncer-dsn", *cluster.pgbouncer_admin.values(),
        )  # fmt: skip
    assert (code, err) == (0, "")
    assert report["health"] == {"write": True, "read": True}
    writer, reader = server(report, "writer"), server(report, "reader")
    assert (writer["in_recovery"], reader["in_recovery"]) == (False, True)
    apps = {(c["application_name"], c["state"]) for c in writer["connections"]}
    assert ("kct_nextjs_writer", "idle") in apps
    assert any(c["application_name"] == "kct_nextjs_reader" for c in reader["connections"])
    assert writer["slow_source"] == "pg_stat_statements"
    assert writer["slow_queries"]
    assert {"calls", "mean_ms", "total_ms", "query"} <= set(writer["slow_queries"][0])
    (public,) = [s for s in report["schemas"] if s["schema"] == "public"]
    assert public["tables"] == 11
    tables = {t["table"]: t for t in public["detail"]}
    assert tables["products"]["live_rows"] == 37
    assert tables["products"]["total_bytes"] > 0
    assert report["replication"]["lag_bytes"] >= 0
    assert report["replication"]["lag_seconds"] >= 0
    assert [s["state"] for s in report["replication"]["standbys"]] == ["streaming"]
    if cluster.pgbouncer_admin:
        modes = {
            p["pool_mode"]
            for b in report["pgbouncers"]
            for p in b["pools"]
            if p["database"] == legacy_database.name
        }
        assert modes == {"transaction", "session"}
        assert all(b["stats"] for b in report["pgbouncers"])


def test_status_text_is_for_a_person(cluster: Cluster, legacy_database: LegacyDatabase) -> None:
    eps = legacy_database.endpoints
    code, out, err = status(
        "--dsn", eps.primary, "--reader-dsn", eps.replica,
        "--pgbouncer-dsn", *cluster.pgbouncer_admin.values(),
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "health: write ok, read ok"
    assert "connections by application_name and state:" in lines
    assert any(line.startswith("replication lag: ") for line in lines)
    assert any(line.split()[:1] == ["products"] for line in lines)
    if cluster.pgbouncer_admin:
        assert sum(line.endswith(": SHOW POOLS") for line in lines) == 2


def test_status_works_through_pgbouncer(legacy_database: LegacyDatabase) -> None:
    eps = legacy_database.endpoints
    code, report, err = status_json("--dsn", eps.writer, "--reader-dsn", eps.reader)
    assert (code, err) == (0, "")
    assert report["health"] == {"write": True, "read": True}
    assert report["schemas"][0]["tables"] == 11
    assert report["replication"]["lag_bytes"] is not None


def test_without_pg_stat_statements_slow_queries_come_from_activity(
    legacy_database: LegacyDatabase,
) -> None:
    with connect(legacy_database.endpoints.primary) as admin:
        admin.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        with connect(legacy_database.endpoints.primary) as busy:
            busy.execute("SELECT 1")  # idle now; an open transaction is 'idle in transaction'
            busy.autocommit = False
            busy.execute("SELECT count(*) FROM products")
            code, report, _ = status_json("--dsn", legacy_database.endpoints.primary)
            busy.rollback()
    assert code == 0
    writer = server(report, "writer")
    assert writer["slow_source"] == "pg_stat_activity"
    states = {q["state"] for q in writer["slow_queries"]}
    assert "idle in transaction" in states
    assert report["health"] == {"write": True, "read": True}  # no reader: reads use the writer


def test_schema_stats_address_tables_by_oid_not_by_pasted_names(
    legacy_database: LegacyDatabase,
) -> None:
    # the plan's getSchemaStats would run pg_total_relation_size('Odd Schema.Mixed Case')
    with connect(legacy_database.endpoints.primary) as admin:
        admin.execute('CREATE SCHEMA "Odd Schema"')
        admin.execute(
            'CREATE TABLE "Odd Schema"."Mixed Case" AS SELECT g FROM generate_series(1, 500) g'
        )
        admin.execute('ANALYZE "Odd Schema"."Mixed Case"')
    code, report, _ = status_json(
        "--dsn", legacy_database.endpoints.primary, "--schema", "Odd Schema"
    )
    assert code == 0
    assert [s["schema"] for s in report["schemas"]] == ["Odd Schema"]
    (table,) = report["schemas"][0]["detail"]
    assert table["table"] == "Mixed Case"
    assert table["live_rows"] > 0  # an estimate: the insert's counters and ANALYZE's can add up
    assert table["total_bytes"] > 0


def test_unreachable_writer_exits_2_with_a_clear_message_and_no_password() -> None:
    dsn = f"postgresql://kct_app:{SECRET}@127.0.0.1:{free_port()}/kct_production"
    code, out, err = status("--dsn", dsn, "--json")
    assert (code, out) == (2, "")
    assert err.startswith(
        "harness status: cannot connect to the writer at postgresql://kct_app:***@"
    )
    assert "check --dsn" in err
    assert SECRET not in err


def test_unreachable_reader_is_reported_and_exits_2(
    legacy_database: LegacyDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = f"postgresql://kct_readonly:{SECRET}@127.0.0.1:{free_port()}/{legacy_database.name}"
    code, report, err = status_json(
        "--dsn", legacy_database.endpoints.primary, "--reader-dsn", reader
    )
    assert code == 2
    assert report["health"] == {"write": True, "read": False}
    assert server(report, "reader")["reachable"] is False
    assert "reader at postgresql://kct_readonly:***@127.0.0.1" in err
    assert SECRET not in json.dumps(report)
    assert SECRET not in err
    assert SECRET not in capsys.readouterr().out


def test_status_as_a_real_process_exits_with_its_code(legacy_database: LegacyDatabase) -> None:
    command = [sys.executable, "-m", "harness.monitor.command", "status"]
    done = subprocess.run(
        [*command, "--dsn", legacy_database.endpoints.writer, "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["health"]["write"] is True
    dsn = f"postgresql://kct_app:{SECRET}@127.0.0.1:{free_port()}/kct_production"
    failed = subprocess.run(
        [*command, "--dsn", dsn], capture_output=True, text=True, timeout=60, check=False
    )
    assert failed.returncode == 2
    assert "cannot connect to the writer" in failed.stderr
    assert SECRET not in failed.stderr + failed.stdout
