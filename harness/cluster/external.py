"""Servers someone else runs, given as ``DATABASE_URL`` and ``DATABASE_READONLY_URL``.

The reader falls back to the writer when no read-only URL is set, as the plan's
``DatabasePool`` does; there is then no replica to wait for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from harness.cluster.base import Cluster, Endpoints
from harness.connections import connect, is_standby, standby_refusal
from harness.dsn import redact
from harness.errors import ConnectionFailed, InfrastructureError, UsageError

__all__ = ["ExternalCluster", "connect_external", "from_env"]


class ExternalCluster(Cluster):
    provider = "external"

    def __init__(self, *, writer: str, reader: str | None = None) -> None:
        self._endpoints = Endpoints(
            primary=writer, replica=reader or writer, writer=writer, reader=reader or writer
        )
        self._replica = reader is not None and reader != writer

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    @property
    def has_streaming_replica(self) -> bool:
        return self._replica

    @property
    def owns_servers(self) -> bool:
        return False

    def allow_users(self, roles: Iterable[str]) -> None:
        """Nothing to do, on purpose: a no-op.

        The harness reaches these servers at the URLs it was given and started no
        pooler in front of them. Where ``DATABASE_URL`` is someone's PgBouncer, who
        may log in through it is that operator's configuration (its ``auth_file`` or
        ``auth_query``), which the harness never edits, as it never changes anything
        on servers it does not own; a role its auth leaves out is refused at login,
        and the traffic check reports that refusal.
        """

    def stop(self) -> None:
        """Nothing to stop: these servers are not ours."""


def _check(dsn: str, *, name: str) -> bool:
    """Connect once; answer whether the server is a standby."""
    try:
        with connect(dsn, timeout=5) as conn:
            return is_standby(conn)
    except ConnectionFailed as exc:
        raise InfrastructureError(
            f"{name}={redact(dsn)} refuses connections ({exc.reason}); "
            "check the host, port and credentials, and that the server is running"
        ) from None


def connect_external(
    *,
    writer: str,
    reader: str | None = None,
    writer_name: str = "DATABASE_URL",
    reader_name: str = "DATABASE_READONLY_URL",
) -> ExternalCluster:
    """Check both servers answer and the writer is a primary; names are for messages."""
    if _check(writer, name=writer_name):
        raise UsageError(
            standby_refusal(
                f"{writer_name}={redact(writer)}",
                fix=f"give the primary there and the standby as {reader_name}",
            )
        )
    if reader:
        _check(reader, name=reader_name)
    return ExternalCluster(writer=writer, reader=reader or None)


def from_env(env: Mapping[str, str] | None = None) -> ExternalCluster:
    env = os.environ if env is None else env
    writer = env.get("DATABASE_URL")
    if not writer:
        raise UsageError(
            "--provider external needs DATABASE_URL (and optionally DATABASE_READONLY_URL) "
            "in the environment; set it to the primary's connection string"
        )
    return connect_external(writer=writer, reader=env.get("DATABASE_READONLY_URL") or None)
