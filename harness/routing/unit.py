"""Read-your-writes: a unit of work whose reads never see data older than its own writes.

After each write committed in the unit, the primary's WAL insert position is
kept as a token; a later read in the unit goes to the replica only once the
replica has replayed that far (``pg_last_wal_replay_lsn()``), waiting at most
the policy's ``read_your_writes_wait``, and to the writer otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from psycopg.abc import Params, QueryNoTemplate

from harness.routing.replica import Conn, Lsn

if TYPE_CHECKING:
    from harness.routing.database import Database

__all__ = ["UnitOfWork"]

Row = tuple[Any, ...]


class UnitOfWork:
    """Reads after a write here see that write: the write's WAL position is the token.

    After each committed write the primary's insert position is kept; a later
    read goes to the replica only once it has replayed that far (waiting at most
    the policy's ``read_your_writes_wait``), else to the writer.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.token: Lsn | None = None
        # set when a write committed but its WAL position could not be read
        self._force_writer: str | None = None

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _wrote(self, lsn: Lsn | None) -> None:
        if lsn is None:  # committed, but the position is unknown: trust only the writer
            self._force_writer = "position_unknown"
        else:
            self.token = lsn if self.token is None else Lsn(max(self.token, lsn))

    def writer(self, *, search_path: Sequence[str] = ()) -> AbstractContextManager[Conn]:
        return self._db._writing(search_path=search_path, unit=self)

    def reader(self, *, search_path: Sequence[str] = ()) -> AbstractContextManager[Conn]:
        return self._db._reading(
            search_path=search_path, after=self.token, force_writer=self._force_writer
        )

    def fetchall(self, query: QueryNoTemplate, params: Params | None = None) -> list[Row]:
        return self._db._read_retrying(
            lambda conn: conn.execute(query, params).fetchall(),
            after=self.token,
            force_writer=self._force_writer,
        )

    def fetchone(self, query: QueryNoTemplate, params: Params | None = None) -> Row | None:
        return self._db._read_retrying(
            lambda conn: conn.execute(query, params).fetchone(),
            after=self.token,
            force_writer=self._force_writer,
        )
