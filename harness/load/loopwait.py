"""How long a request waited for the load generator's event loop, as the loop watch saw it.

Every instance a Locust process runs shares its one event loop: when a request's
answer arrives while the loop runs another instance's work (a TLS handshake,
SCRAM's key derivation at a cold start), the request is timed waiting for it.
The locustfile's watch asks to wake every ``tick`` ms and records how late it
woke. A wake-up ``l`` ms late means the loop was busy for the last ``l`` ms of
that tick's ``tick + l``; an answer arriving at a random moment of it waits
the rest of that busy stretch, anything from ``l`` down to 0. So, over the run,
the chance a request waits longer than ``x`` is ``sum(max(0, l - x)) / sum(tick + l)``,
and the share of the time the loop was late is that at ``x = 0``.

The projection adds this wait, measured, to the time its queueing model gives
the rest of a request (exponential, of mean ``m``) and reads the p95 of the sum.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopWait"]

#: lateness is kept to this resolution, in ms
RESOLUTION_MS = 0.25


@dataclass(frozen=True)
class LoopWait:
    """The loop watch's record: each lateness (ms, to :data:`RESOLUTION_MS`) with how
    many wake-ups had it, and the watch's period."""

    late: tuple[tuple[float, int], ...]
    tick_ms: float
    wake_ups: int

    @classmethod
    def from_samples(cls, samples: Iterable[float], *, tick_ms: float) -> LoopWait:
        counts: Counter[float] = Counter()
        total = 0
        for value in samples:
            total += 1
            rounded = round(round(value / RESOLUTION_MS) * RESOLUTION_MS, 3)
            if rounded > 0:
                counts[rounded] += 1
        return cls(late=tuple(sorted(counts.items())), tick_ms=tick_ms, wake_ups=total)

    @classmethod
    def merged(cls, waits: Sequence[LoopWait]) -> LoopWait:
        """Several runs' records as one (the same watch's period)."""
        counts: Counter[float] = Counter()
        for wait in waits:
            counts.update(dict(wait.late))
        return cls(
            late=tuple(sorted(counts.items())),
            tick_ms=waits[0].tick_ms,
            wake_ups=sum(w.wake_ups for w in waits),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopWait:
        return cls(
            late=tuple((float(ms), int(n)) for ms, n in data["late"]),
            tick_ms=float(data["tick_ms"]),
            wake_ups=int(data["wake_ups"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {"late": [list(pair) for pair in self.late], "tick_ms": self.tick_ms,
                "wake_ups": self.wake_ups}  # fmt: skip

    @property
    def _time_ms(self) -> float:
        return self.wake_ups * self.tick_ms + sum(ms * n for ms, n in self.late)

    @property
    def share(self) -> float:
        """The share of the time the loop was late: the chance a request waited at all."""
        time = self._time_ms
        return sum(ms * n for ms, n in self.late) / time if time > 0 else 0.0

    def exceeds(self, t: float, mean: float) -> float:
        """The chance that an exponential time of ``mean`` ms plus this wait exceeds ``t`` ms."""
        time = self._time_ms
        if time <= 0:
            return math.exp(-t / mean)
        tail = (1 - self.share) * math.exp(-t / mean)
        for ms, n in self.late:
            # the wait is uniform on [0, ms] for ms of every (tick + ms) such wake-ups cover
            if t >= ms:
                part = mean * (math.exp((ms - t) / mean) - math.exp(-t / mean))
            else:
                part = mean * (1 - math.exp(-t / mean)) + (ms - t)
            tail += n * part / time
        return tail

    def p95(self, mean: float) -> float:
        """The 95th percentile of an exponential time of ``mean`` ms plus this wait."""
        if mean <= 0:
            mean = 1e-9
        low, high = 0.0, mean * math.log(20) + (self.late[-1][0] if self.late else 0.0)
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if self.exceeds(middle, mean) > 0.05 else (low, middle)
        return high

    def mean_for_p95(self, p95: float) -> float:
        """The exponential mean whose sum with this wait has ``p95`` as its 95th percentile
        (0 when the wait alone reaches it)."""
        if self.p95(0.0) >= p95:
            return 0.0
        low, high = 0.0, p95 / math.log(20)
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if self.p95(middle) < p95 else (low, middle)
        return low
