"""How long work says where it is: a callable that takes one line of text.

Every long step (starting a cluster, seeding, a migration, a load run) takes one,
so a command-line user sees progress and a test or a library caller sees nothing.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "quiet"]

Progress = Callable[[str], None]


def quiet(_: object) -> None:
    """Says nothing: the default where nobody listens."""
