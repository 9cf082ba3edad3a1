"""One application instance of each architecture: how it holds its database connections.

A serverless platform runs many short-lived instances, each with its own small
pool; pool errors come from their connections adding up against a server or
pooler limit, and from each cold start paying for new connections. So the
unit of load is the instance, not the request: it opens its connections on its
first request, keeps them for its lifetime, and closes them when recycled.

* :class:`DirectInstance` is the baseline: a node-postgres-style pool straight
  to the primary, opening a connection when a request needs one and no idle one
  is left, and surfacing the server's refusal (SQLSTATE 53300) to that request.
* :class:`RoutedInstance` is the target: ``harness.routing.Database`` with the
  plan's pools, writes to PgBouncer's writer and reads to its reader.
* :class:`PerRequestInstance` is either, with a driver that keeps no pool.

Neither imports Locust: the Locust user (``loadtests/pguser.py``) times them,
and tests drive them directly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Protocol

import psycopg

from harness.connections import Conn, connect, connect_kwargs
from harness.errors import InfrastructureError
from harness.load.config import BaselineSettings, TargetSettings
from harness.load.workload import TOKEN, Operation, Workload
from harness.routing import Database, PoolConfig, PoolExhausted, classify

__all__ = [
    "ARCHITECTURES",
    "DirectInstance",
    "Instance",
    "PerRequestInstance",
    "RoutedInstance",
    "Samples",
    "failure_label",
    "lifetime",
    "load_samples",
    "pick_params",
]

ARCHITECTURES = ("baseline", "target")
Row = dict[str, object]
#: query name -> the rows its parameters are drawn from
Samples = Mapping[str, Sequence[Row]]
#: as many params rows as the gate's traffic reads
MAX_PARAM_ROWS = 1000


class Instance(Protocol):
    def run(self, operation: Operation, params: Mapping[str, object]) -> None: ...

    def close(self) -> None: ...


def failure_label(exc: BaseException) -> str:
    """``kind: ExceptionType``: the kind first, so counts group by who refused."""
    return f"{classify(exc).value}: {type(exc).__name__}"


def load_samples(url: str, workload: Workload, *, timeout: float = 10.0) -> dict[str, list[Row]]:
    """Each query's parameter rows (its ``params`` query), read once before the load starts.

    Read on the system under load itself, so the baseline draws from the legacy
    layout and the target from the migrated one, by the same unqualified names.
    """
    samples: dict[str, list[Row]] = {}
    try:
        with connect(url, timeout=timeout) as conn:
            for op in workload.live:
                if op.params is None:
                    samples[op.name] = [{}]
                    continue
                cur = conn.execute(op.params.encode(), prepare=False)
                names = [c.name for c in cur.description or ()]
                samples[op.name] = [
                    dict(zip(names, row, strict=True)) for row in cur.fetchmany(MAX_PARAM_ROWS)
                ]
    except psycopg.Error as exc:
        raise InfrastructureError(
            f"could not read the {workload.name} workload's parameter rows: "
            f"{str(exc).strip()}; check that the database is seeded and reachable, and the "
            "params queries of [[workload.queries]] in plan.toml"
        ) from None
    empty = sorted(name for name, rows in samples.items() if not rows)
    if empty:
        raise InfrastructureError(
            f"the {workload.name} workload's params queries found no rows for "
            f"{', '.join(empty)}: seed the legacy database before running load against it"
        )
    return samples


def pick_params(operation: Operation, samples: Samples, rng: random.Random) -> dict[str, object]:
    """A random params row of the query, and a token unique to this request."""
    row = rng.choice(samples[operation.name])
    return {**row, TOKEN: f"pgcutover-load-{rng.getrandbits(64):016x}"}


def _execute(conn: Conn, operation: Operation, params: Mapping[str, object]) -> None:
    values = dict(params)
    for statement in operation.statements:
        cur = conn.execute(statement.encode(), values, prepare=False)
        if cur.description is not None:
            rows = cur.fetchall()
            if rows:
                values.update(zip([c.name for c in cur.description], rows[0], strict=True))


class DirectInstance:
    """The baseline's pool: lazy, straight to the primary, errors reach the request.

    Like node-postgres' ``Pool``: no minimum, a connection is opened when a
    request finds none idle (up to ``pool_max_size``), and a refused connection
    fails that request with the server's own error.
    """

    def __init__(self, url: str, *, settings: BaselineSettings, application_name: str) -> None:
        self.url = url
        self.settings = settings
        self.application_name = application_name
        self._idle: list[Conn] = []
        self._open = 0

    def _acquire(self) -> Conn:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not conn.broken:
                return conn
            self._open -= 1
        if self._open >= self.settings.pool_max_size:
            raise PoolExhausted(
                role="baseline",
                timeout=self.settings.pool_timeout,
                stats={"pool_max": self.settings.pool_max_size, "pool_size": self._open},
            )
        # The application's own connection, as its driver makes it: its errors are what
        # the comparison counts, so not through the harness's connect().
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            **connect_kwargs(
                timeout=self.settings.connect_timeout, application_name=self.application_name
            ),
        )
        self._open += 1
        return conn

    def _release(self, conn: Conn) -> None:
        if conn.closed or conn.broken:
            self._open -= 1
            conn.close()
        else:
            self._idle.append(conn)

    def run(self, operation: Operation, params: Mapping[str, object]) -> None:
        conn = self._acquire()
        try:
            if len(operation.statements) > 1:
                with conn.transaction():
                    _execute(conn, operation, params)
            else:
                _execute(conn, operation, params)
        finally:
            self._release(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        self._open = 0


def _target_pools(settings: TargetSettings) -> tuple[PoolConfig, PoolConfig]:
    writer = PoolConfig(
        application_name="pgcutover_load_writer",
        min_size=settings.writer_min_size,
        max_size=settings.writer_max_size,
        max_idle=settings.writer_max_idle,
        timeout=settings.pool_timeout,
        connect_timeout=settings.connect_timeout,
    )
    reader = PoolConfig(
        application_name="pgcutover_load_reader",
        min_size=settings.reader_min_size,
        max_size=settings.reader_max_size,
        max_idle=settings.reader_max_idle,
        timeout=settings.pool_timeout,
        connect_timeout=settings.connect_timeout,
    )
    return writer, reader


class RoutedInstance:
    """The target's instance: ``harness.routing.Database`` with the plan's pools."""

    def __init__(
        self, writer_url: str, reader_url: str | None, *, settings: TargetSettings
    ) -> None:
        writer, reader = _target_pools(settings)
        self.db = Database(writer_url, reader_url, writer_pool=writer, reader_pool=reader)

    def run(self, operation: Operation, params: Mapping[str, object]) -> None:
        if operation.kind == "read" and len(operation.statements) == 1:
            self.db.fetchall(operation.statements[0].encode(), params)
            return
        with self.db.writer() as conn:
            _execute(conn, operation, params)

    def close(self) -> None:
        self.db.close()


class PerRequestInstance:
    """A driver without a pool: every request opens a connection of its own and closes it.

    A function that creates its client per invocation: each request pays a whole
    connection set-up (with TLS and SCRAM, the most expensive part of a short query).
    A one-statement read goes to the reader when there is one, everything else to
    the writer; no router retries for it.
    """

    def __init__(self, writer_url: str, reader_url: str | None, *, connect_timeout: float) -> None:
        self.writer_url = writer_url
        self.reader_url = reader_url or writer_url
        self.connect_timeout = connect_timeout

    def run(self, operation: Operation, params: Mapping[str, object]) -> None:
        read = operation.kind == "read" and len(operation.statements) == 1
        url = self.reader_url if read else self.writer_url
        kwargs = connect_kwargs(timeout=self.connect_timeout, application_name="pgcutover_load")
        with psycopg.connect(url, autocommit=True, **kwargs) as conn:
            if len(operation.statements) > 1:
                with conn.transaction():
                    _execute(conn, operation, params)
            else:
                _execute(conn, operation, params)

    def close(self) -> None:
        """Nothing is kept between requests."""


def lifetime(base: float, *, jitter: float, rng: random.Random) -> float:
    """An instance's lifetime in seconds, spread so instances do not recycle together."""
    return base * (1 + rng.uniform(-jitter, jitter))
