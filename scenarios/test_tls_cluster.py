"""A cluster started with TLS asks every TCP client for TLS and SCRAM, as a hosted database does.

The load comparison starts its two systems this way, so that each new connection
pays what it pays in production; these scenarios show, on the real servers, that
every path (direct, PgBouncer's clients, PgBouncer to its server, the replica's
stream) is encrypted and authenticated, and that a client without either is refused.
"""

from __future__ import annotations

import psycopg
import pytest
from hosted import hosted_cluster  # noqa: F401  (the fixture "hosted")
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.cluster.local import LocalCluster
from harness.testing.fix_cluster import connect


def _without(dsn: str, **changes: str | None) -> str:
    params = {**conninfo_to_dict(dsn), **changes}
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


def test_every_endpoint_speaks_tls_and_scram(hosted: LocalCluster) -> None:
    e = hosted.endpoints
    for dsn in (e.primary, e.replica, e.writer, e.reader):
        with connect(dsn) as conn:
            assert conn.pgconn.ssl_in_use, dsn
            assert conn.execute("SELECT 1").fetchone() == (1,)
    with connect(e.primary) as conn:
        # the password is stored as a SCRAM verifier, not in md5 or plain
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'"
        ).fetchone()
        assert row is not None
        assert str(row[0]).startswith("SCRAM-SHA-256$")
        # PgBouncer's own server connections and the replica's stream are encrypted too
        with connect(e.writer) as through:
            through.execute("SELECT 1")
            rows = conn.execute(
                "SELECT a.application_name, a.backend_type, s.ssl FROM pg_stat_activity a "
                "JOIN pg_stat_ssl s USING (pid) WHERE a.pid <> pg_backend_pid() "
                "AND a.backend_type IN ('client backend', 'walsender')"
            ).fetchall()
    kinds = {backend for _, backend, _ in rows}
    assert kinds == {"client backend", "walsender"}, rows
    assert all(ssl for _, _, ssl in rows), rows


@pytest.mark.parametrize("path", ["primary", "writer"])
def test_a_client_without_tls_or_the_password_is_refused(hosted: LocalCluster, path: str) -> None:
    dsn = getattr(hosted.endpoints, path)
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|SSL required"):
        psycopg.connect(_without(dsn, sslmode="disable"), connect_timeout=5).close()
    refused = r"password authentication failed|SASL authentication failed"
    with pytest.raises(psycopg.OperationalError, match=refused):
        psycopg.connect(_without(dsn, password="not-it"), connect_timeout=5).close()


def test_the_harness_keeps_its_trusted_socket(hosted: LocalCluster) -> None:
    """Its own sessions on the Unix socket need no password: only TCP clients pay."""
    assert hosted.primary is not None
    socket = make_conninfo(
        "", host=str(hosted.workdir / "sockets"), port=hosted.primary.port, user="postgres"
    )
    with connect(socket) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pgbouncer_holds_the_servers_secret_and_logs_in_with_it(hosted: LocalCluster) -> None:
    """As a production PgBouncer (auth_query or an auth_file of secrets): it checks a
    login without deriving a secret, and opens server connections by SCRAM pass-through."""
    with connect(hosted.endpoints.primary) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'"
        ).fetchone()
    assert row is not None
    for bouncer in hosted.bouncers.values():
        held = (bouncer.workdir / "users.txt").read_text()
        assert f'"postgres" "{row[0]}"' in held
        assert hosted.security is not None
        assert hosted.security.password not in held
        with connect(bouncer.admin_dsn, prepare_threshold=None) as admin:
            admin.execute("RECONNECT")  # every server connection is opened afresh
        dsn = (
            hosted.endpoints.writer
            if bouncer.settings.role == "writer"
            else hosted.endpoints.reader
        )
        with connect(dsn) as through:
            assert through.execute("SELECT 1").fetchone() == (1,)
