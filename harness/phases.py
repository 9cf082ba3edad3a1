"""Where the gate's time went: a clock its phases, steps and checks report into.

At scale 100 a gate takes minutes, and "seeding 26 s" in a log says little
about the rest. The clock listens to what the gate already says: the progress
lines that open a phase (starting the cluster, loading, the backup, each step,
rolling back, migrating again) and every check as it is emitted, which closes
the time spent computing it. The data phases add their volume (rows and bytes)
with :func:`note`, so the table gives rows/s and MB/s next to the seconds.

The clock in use is found through a context variable, so the loader and the
backup can report into it without every caller passing it down; with no clock
running, :func:`note` and :func:`begin` do nothing.

In ``gate.json`` the table is ``phases``: a list of rows in the order they ran::

    "phases": [
      {"name": "load", "kind": "phase", "seconds": 9.8, "rows": 3580900, "bytes": 446941759,
       "rows_per_second": 365398.0, "mb_per_second": 43.5},
      {"name": "migrate.steps", "kind": "check", "seconds": 0.01}
    ]
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from harness.progress import Progress

__all__ = ["Phase", "PhaseClock", "begin", "note", "phases_html"]

Kind = Literal["phase", "step", "check"]

# The gate's and the runner's progress lines that open a phase, and the phase's name.
_OPENERS: tuple[tuple[str, str], ...] = (
    ("seeding the legacy database", "load"),
    ("application traffic: logins", "traffic logins"),
    ("application traffic:", "traffic start"),
    ("pg_dump backup", "backup"),
    ("migrating with plan", "migrate"),
    ("rolling back", "rollback"),
    ("migrating again", "migrate again"),
)
_STEP = "applying "
# How the runner says a step ended, either way ("…: done in 0.12 sec", "FAILED …").
_DONE = ": done in "


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_C = TypeVar("_C", bound=_Named)


@dataclass
class Phase:
    """One row of the table: a phase, a step, or the computing of one check."""

    name: str
    kind: Kind
    seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "seconds": round(self.seconds, 3),
        }
        if self.rows is not None:
            out["rows"] = self.rows
        if self.bytes is not None:
            out["bytes"] = self.bytes
        if self.seconds > 0 and self.rows:
            out["rows_per_second"] = round(self.rows / self.seconds, 1)
        if self.seconds > 0 and self.bytes:
            out["mb_per_second"] = round(self.bytes / self.seconds / 1e6, 2)
        return out


_ACTIVE: ContextVar[PhaseClock | None] = ContextVar("pgcutover_phase_clock", default=None)


class PhaseClock:
    """Rows of time, from construction to :meth:`finish`; the first row is ``first``.

    Constructing one makes it the clock :func:`note` and :func:`begin` report into,
    until :meth:`finish`. Time is cut at every event: a phase or step opening, a step
    done, a data phase's volume noted, a check emitted. A check gets the time since
    the event before it, since a check is computed and then emitted.
    """

    def __init__(self, *, first: str = "start cluster", clock: Callable[[], float] | None = None):
        self._now = clock or time.perf_counter
        self._since = self._now()
        self._phase = Phase(first, "phase")
        self._open = self._phase
        self.rows: list[Phase] = [self._phase]
        self._token: Token[PhaseClock | None] | None = _ACTIVE.set(self)

    def _lap(self) -> float:
        now = self._now()
        spent, self._since = now - self._since, now
        return spent

    def begin(self, name: str, *, kind: Kind = "phase") -> None:
        """Open ``name``; the time until the next event is its."""
        self._open.seconds += self._lap()
        self._open = Phase(name, kind)
        self.rows.append(self._open)
        if kind == "phase":
            self._phase = self._open

    def step_done(self) -> None:
        """The running step is over; the time until the next event is its phase's."""
        self._open.seconds += self._lap()
        self._open = self._phase

    def note(self, *, rows: int | None = None, nbytes: int | None = None) -> None:
        """The running row's data work is done: add its volume (rows, bytes) and time."""
        self._open.seconds += self._lap()
        if rows is not None:
            self._open.rows = (self._open.rows or 0) + rows
        if nbytes is not None:
            self._open.bytes = (self._open.bytes or 0) + nbytes

    def checked(self, name: str) -> None:
        """A check was emitted: the time since the last event went into computing it."""
        self.rows.append(Phase(name, "check", self._lap()))

    def wrap(self, progress: Progress) -> Progress:
        """``progress``, opening a row at each line that starts a phase or a step."""

        def said(message: str) -> None:
            for prefix, name in _OPENERS:
                if message.startswith(prefix):
                    self.begin(name)
                    break
            else:
                if message.startswith(_STEP):
                    self.begin(message[len(_STEP) :].split(" (", 1)[0], kind="step")
                elif self._open.kind == "step" and _DONE in message:
                    self.step_done()
            progress(message)

        return said

    def wrap_emit(self, emit: Callable[[_C], None]) -> Callable[[_C], None]:
        """``emit``, giving each check its row as it comes out."""

        def emitted(check: _C) -> None:
            self.checked(check.name)
            emit(check)

        return emitted

    def finish(self, *, last: str = "teardown") -> list[dict[str, object]]:
        """The table as ``gate.json`` holds it; the time since the last event is ``last``."""
        self.rows.append(Phase(last, "phase", self._lap()))
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        return [row.to_json() for row in self.rows if row.seconds > 0 or row.kind == "check"]


def begin(name: str) -> None:
    """Open a phase on the running clock, if any (the backup proof after the backup)."""
    clock = _ACTIVE.get()
    if clock is not None:
        clock.begin(name)


def note(*, rows: int | None = None, nbytes: int | None = None) -> None:
    """On the running clock, if any: the current row's data work is done (see
    :meth:`PhaseClock.note`); with no volume, only its time is cut here."""
    clock = _ACTIVE.get()
    if clock is not None:
        clock.note(rows=rows, nbytes=nbytes)


def _num(row: Mapping[str, object], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def phases_html(phases: object) -> str:
    """The "where the time went" table for index.html; empty without a usable table."""
    if not isinstance(phases, list) or not phases:
        return ""
    total = sum(_num(r, "seconds") or 0.0 for r in phases if isinstance(r, Mapping))
    body = []
    for row in phases:
        if not isinstance(row, Mapping):
            continue
        seconds = _num(row, "seconds") or 0.0
        cells = [
            html.escape(str(row.get("name", "?"))),
            html.escape(str(row.get("kind", ""))),
            f"{seconds:.2f}",
            f"{100 * seconds / total:.0f}%" if total else "",
        ]
        for key, fmt in (("rows_per_second", "{:,.0f}"), ("mb_per_second", "{:.1f}")):
            value = _num(row, key)
            cells.append(fmt.format(value) if value is not None else "")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        '<h2 id="phases">Where the time went</h2><table class="phases"><tr><th>phase</th>'
        "<th>kind</th><th>seconds</th><th>share</th><th>rows/s</th><th>MB/s</th></tr>"
        + "".join(body)
        + "</table>"
    )
