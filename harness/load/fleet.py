"""One Locust user's succession of application instances, as a serverless platform runs them.

An instance lives for its lifetime, then the platform either stops it (its
connections close) or suspends it: a frozen instance's timers do not fire, so its
connections stay open and idle, counting against every limit, until the platform
reclaims it. Some instances end their lives together (a deploy, a traffic burst)
and their successors cold-start, and connect, in the same second. Kept apart from
the Locust user so that tests can drive it with their own clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from harness.load.config import InstanceSettings
from harness.load.instance import Instance, lifetime

__all__ = ["Succession", "lifetime_together"]


def lifetime_together(base: float, *, now: float) -> float:
    """The seconds until the next multiple of ``base`` on the wall clock (``now``, epoch s).

    Every instance given such a lifetime ends at the same instant, in every Locust
    process, and the next request of each cold-starts: a burst of new connections.
    """
    return base * (int(now // base) + 1) - now


class Succession:
    """The current instance of one user, the frozen ones it left, and when each ends."""

    def __init__(
        self,
        settings: InstanceSettings,
        *,
        make: Callable[[], Instance],
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._make = make
        self._rng = rng
        self._clock = clock
        self._wall = wall
        self._current: Instance | None = None
        self.expires = 0.0
        #: (reclaimed at, instance): suspended with their connections open
        self.suspended: list[tuple[float, Instance]] = []

    @property
    def cold(self) -> bool:
        """Whether the next request starts a new instance (and pays its connections)."""
        return self._current is None

    def instance(self) -> Instance:
        """The running instance; a new one (a cold start) when there is none."""
        if self._current is None:
            s = self.settings
            if self._rng.random() < s.cold_start_share:
                lives = lifetime_together(s.lifetime, now=self._wall())
            else:
                lives = lifetime(s.lifetime, jitter=s.lifetime_jitter, rng=self._rng)
            self.expires = self._clock() + lives
            self._current = self._make()
        return self._current

    def recycle_if_due(self) -> None:
        """Reclaim the frozen instances whose time is up; end the running one if it is due."""
        now = self._clock()
        due = [entry for entry in self.suspended if entry[0] <= now]
        for entry in due:
            self.suspended.remove(entry)
            entry[1].close()
        if self._current is not None and now >= self.expires:
            if self._rng.random() < self.settings.suspended_share:
                self.suspended.append((now + self.settings.suspended_for, self._current))
            else:
                self._current.close()
            self._current = None

    def close(self) -> None:
        for _, frozen in self.suspended:
            frozen.close()
        self.suspended.clear()
        if self._current is not None:
            self._current.close()
            self._current = None
