"""What every cluster provider gives: a primary, a streaming replica, and PgBouncer in front.

Providers differ in how they start servers (local binaries, containers, or
servers someone else runs); everything above this module only sees
:class:`Endpoints` and :meth:`Cluster.wait_for_replica`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from types import TracebackType

from harness.connections import Lsn, connect, replay_target, wait_for_replay
from harness.dsn import redact, with_database
from harness.errors import InfrastructureError

__all__ = ["Cluster", "Endpoints"]


def once(wait: Callable[[], None]) -> Callable[[], None]:
    """``wait`` run by its first caller; a caller meanwhile (another thread) waits for it.

    The probes run after one step each need the replica caught up with that step: one
    wait answers all of them. A wait that raised is tried again by the next caller.
    """
    lock = threading.Lock()
    done = False

    def call() -> None:
        nonlocal done
        with lock:
            if not done:
                wait()
                done = True

    return call


@dataclass(frozen=True)
class Endpoints:
    """DSNs for one database on the cluster.

    ``writer`` and ``reader`` go through PgBouncer (transaction pooling on the
    primary, session pooling on the replica); ``primary`` and ``replica`` reach
    the servers directly. Where a provider has no pooler they equal the direct ones.
    """

    primary: str
    replica: str
    writer: str
    reader: str

    def for_database(self, dbname: str) -> Endpoints:
        return replace(
            self,
            primary=with_database(self.primary, dbname),
            replica=with_database(self.replica, dbname),
            writer=with_database(self.writer, dbname),
            reader=with_database(self.reader, dbname),
        )

    def as_env(self) -> dict[str, str]:
        """The names the plan's application code reads, plus the direct ones."""
        return {
            "PRIMARY_URL": self.primary,
            "REPLICA_URL": self.replica,
            "DATABASE_URL": self.writer,
            "DATABASE_READONLY_URL": self.reader,
        }


class Cluster(abc.ABC):
    """A running primary with a streaming replica; stop it with :meth:`stop` or ``with``."""

    provider: str = ""

    @property
    @abc.abstractmethod
    def endpoints(self) -> Endpoints:
        """DSNs for the cluster's default database."""

    @property
    def has_streaming_replica(self) -> bool:
        """False where the reader is the writer itself (an external cluster without replica)."""
        return True

    @property
    def owns_servers(self) -> bool:
        """True where the harness started the servers: everything on them is its own to change."""
        return True

    @property
    def pgbouncer_admin(self) -> dict[str, str]:
        """Admin-console DSNs of the poolers this cluster started, by role (writer, reader)."""
        return {}

    @abc.abstractmethod
    def allow_users(self, roles: Iterable[str]) -> None:
        """Let ``roles`` connect through the cluster's PgBouncers as well as directly.

        PgBouncer admits only the users its auth file lists, and a plan creates roles
        the cluster did not know when it started; the gate calls this once they exist.
        Each provider either does it or says in its own docstring why it need not.
        """

    def watch(self) -> list[str]:
        """Look at the cluster's processes once; what changed, for an operator to read.

        A provider that can repair something (restart a pooler) does so here and says so.
        """
        return []

    def scratch_server(self) -> AbstractContextManager[str | None]:
        """A DSN of a server of its own beside the cluster, for work whose writes must not
        reach the primary's WAL (the backup's proof); None where the provider has none."""
        return nullcontext(None)

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop what this cluster started, and nothing else. Safe to call twice."""

    def wait_for_replica(self, *, timeout: float = 30.0) -> None:
        """Block until the replica has replayed everything the primary has written so far."""
        if not self.has_streaming_replica:
            return
        eps = self.endpoints
        with connect(eps.primary, timeout=5) as conn:
            target: Lsn = replay_target(conn)
        with connect(eps.replica, timeout=5) as conn:
            if wait_for_replay(conn, target, timeout=timeout) is None:
                raise InfrastructureError(
                    f"replica at {redact(eps.replica)} has not replayed up to {target} "
                    f"after {timeout:.1f} sec; check that it is streaming "
                    "(pg_stat_replication on the primary)"
                )

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
