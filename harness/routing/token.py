"""Read-your-writes: what a reader must have replayed before it may serve a scope's reads.

One type for every scope that reads its own writes (a :class:`UnitOfWork`, an
ORM :class:`~harness.routing.orm.RoutingSession`): after each committed write
the scope keeps the primary's WAL insert position; a later read goes to the
replica only once it has replayed that far, and to the writer otherwise. A
write whose position could not be read (the connection broke just after the
commit) leaves only the writer trustworthy for the rest of the scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.connections import Lsn

__all__ = ["POSITION_UNKNOWN", "ReadToken"]

#: the fallback reason counted in ``Database.stats()`` when a token's position is unknown
POSITION_UNKNOWN = "position_unknown"


@dataclass
class ReadToken:
    """The newest WAL position a scope wrote, or the fact that it wrote somewhere unknown."""

    lsn: Lsn | None = None
    position_unknown: bool = False

    def wrote(self, lsn: Lsn | None) -> None:
        """A write committed at ``lsn`` (None: committed, but its position could not be read)."""
        if lsn is None:
            self.position_unknown = True
        elif self.lsn is None or lsn > self.lsn:
            self.lsn = lsn

    @property
    def writer_only(self) -> str | None:
        """Why only the writer may serve this scope's reads, or None if a replica may."""
        return POSITION_UNKNOWN if self.position_unknown else None
