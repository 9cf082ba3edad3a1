"""A unit of work whose reads never see data older than its own writes.

The unit only holds a :class:`ReadToken` and hands it to the router's public
calls; the router records each committed write in it and routes each read by
it. The unit knows the router only through the :class:`Router` protocol, so
the two modules do not import each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from psycopg.abc import Params, QueryNoTemplate

from harness.connections import Conn, Lsn
from harness.routing.token import ReadToken

__all__ = ["Router", "UnitOfWork"]

Row = tuple[Any, ...]


class Router(Protocol):
    """What a unit of work needs from :class:`~harness.routing.Database`."""

    def writer(
        self, *, search_path: Sequence[str] = (), token: ReadToken | None = None
    ) -> AbstractContextManager[Conn]: ...

    def reader(
        self, *, search_path: Sequence[str] = (), after: Lsn | ReadToken | None = None
    ) -> AbstractContextManager[Conn]: ...

    def fetchall(
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        after: ReadToken | None = None,
    ) -> list[Row]: ...

    def fetchone(
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        after: ReadToken | None = None,
    ) -> Row | None: ...


class UnitOfWork:
    """Reads after a write here see that write: the write's WAL position is the token.

    A read goes to the replica only once it has replayed the newest write of the
    unit (waiting at most the policy's ``read_your_writes_wait``), else to the
    writer.
    """

    def __init__(self, router: Router) -> None:
        self._router = router
        self.read_token = ReadToken()

    @property
    def token(self) -> Lsn | None:
        """The newest WAL position written in this unit, if known."""
        return self.read_token.lsn

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def writer(self, *, search_path: Sequence[str] = ()) -> AbstractContextManager[Conn]:
        return self._router.writer(search_path=search_path, token=self.read_token)

    def reader(self, *, search_path: Sequence[str] = ()) -> AbstractContextManager[Conn]:
        return self._router.reader(search_path=search_path, after=self.read_token)

    def fetchall(self, query: QueryNoTemplate, params: Params | None = None) -> list[Row]:
        return self._router.fetchall(query, params, after=self.read_token)

    def fetchone(self, query: QueryNoTemplate, params: Params | None = None) -> Row | None:
        return self._router.fetchone(query, params, after=self.read_token)
