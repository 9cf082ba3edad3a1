"""A check's verdict: what was checked, whether it held, and why not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Check", "Verdict"]

Verdict = Literal["pass", "fail", "warn", "not_run"]


@dataclass(frozen=True)
class Check:
    """One named invariant, checked once.

    ``reason`` is one sentence a database engineer can act on; ``details`` lists
    the offenders one per line, so a report names every one of them. Where they
    are many and alike (advice), ``details`` groups them and ``listing`` keeps the
    full list for the report file, out of the console.
    """

    name: str
    verdict: Verdict
    reason: str
    details: tuple[str, ...] = field(default=())
    listing: tuple[str, ...] = field(default=())  # every item, for the report file only

    @property
    def passed(self) -> bool:
        """Did not fail: a check that held, warned, or could not run (see ``ran``)."""
        return self.verdict != "fail"

    @property
    def ran(self) -> bool:
        return self.verdict != "not_run"

    @classmethod
    def not_run(cls, name: str, *, why: str, run_with: str) -> Check:
        """A check this gate could not make: why not, and the flag or setting that makes it.

        A verdict is only as good as what it looked at, so a check left out is
        reported as one, never dropped from the list.
        """
        return cls(name, "not_run", f"not run: {why}", (f"to run it: {run_with}",))

    @classmethod
    def of(
        cls, name: str, *, offenders: list[str], ok: str, failed: str, warn_only: bool = False
    ) -> Check:
        """A check that fails (or warns) when there is any offender."""
        if not offenders:
            return cls(name, "pass", ok)
        return cls(name, "warn" if warn_only else "fail", failed, tuple(offenders))

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "name": self.name,
            "verdict": self.verdict,
            "reason": self.reason,
            "details": list(self.details),
        }
        if self.listing:
            shown["listing"] = list(self.listing)
        return shown

    def __str__(self) -> str:
        word = "SKIP" if self.verdict == "not_run" else self.verdict.upper()
        head = f"{word:4} {self.name}: {self.reason}"
        return "\n".join([head, *(f"       - {d}" for d in self.details)])
