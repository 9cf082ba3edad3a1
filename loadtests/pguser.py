"""A Locust user for PostgreSQL: one application instance with its own pool.

Each user is an instance of the application (a serverless function): it opens
its connections on its first request (that request pays for them, as a cold
start does), runs the workload's operations with a think time between them,
and after its lifetime closes everything and starts again as a new instance.
As a serverless fleet does, some instances are suspended instead (their connections
left open and idle until the platform reclaims them), some end their lives together
and cold-start in the same second, and the driver may connect per request
(``[instance]`` in ``loadtests/compare.toml``).
Every request reaches Locust with float milliseconds and, when it fails, an
error named ``kind: ExceptionType`` by ``harness.routing.classify`` (pool_timeout,
server_refused, pooler_refused, replica_unavailable, query_error).

Locust patches its process with gevent: this module runs only inside Locust.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable
from typing import ClassVar

from locust import User, task
from locust.exception import StopUser

from harness.load.config import LoadConfig
from harness.load.fleet import Succession
from harness.load.instance import (
    DirectInstance,
    Instance,
    PerRequestInstance,
    RoutedInstance,
    Samples,
    failure_label,
    pick_params,
)
from harness.load.workload import Workload

__all__ = ["InstanceUser", "RequestFailed"]

_numbers = itertools.count()


class RequestFailed(Exception):
    """What Locust records for a failed request; its repr is the label, so CSVs group by kind."""

    def __repr__(self) -> str:
        return str(self)


class InstanceUser(User):
    """Set ``config``, ``workload``, ``architecture`` and ``urls`` on a subclass."""

    abstract = True
    config: ClassVar[LoadConfig]
    workload: ClassVar[Workload]
    architecture: ClassVar[str]
    #: baseline: (primary, None); target: (writer, reader or None)
    urls: ClassVar[tuple[str, str | None]]
    samples: ClassVar[Samples] = {}
    #: requests this process may still send (the cap of ``[run] max_requests``)
    budget: ClassVar[list[int]] = [0]
    #: milliseconds of every successful request in this process (Locust's own
    #: percentiles mix in failures, which are fast when refused and slow when timed out)
    succeeded_ms: ClassVar[list[float]] = []
    #: milliseconds of each instance's first request, the one its cold start opened the
    #: pools in, when it succeeded (a part of ``succeeded_ms``)
    cold_ms: ClassVar[list[float]] = []

    def on_start(self) -> None:
        number = next(_numbers)
        self.rng = random.Random(self.config.run.seed * 1_000_003 + number)
        self.name = f"{self.architecture}-instance-{os.getpid()}-{number}"
        self.instances = Succession(self.config.instance, make=self._new_instance, rng=self.rng)

    def wait_time(self) -> float:
        inst = self.config.instance
        return self.rng.uniform(inst.think_time_min, inst.think_time_max)

    def _new_instance(self) -> Instance:
        first, second = self.urls
        if self.config.instance.driver == "per_request":
            side = self.config.baseline if self.architecture == "baseline" else self.config.target
            return PerRequestInstance(first, second, connect_timeout=side.connect_timeout)
        if self.architecture == "baseline":
            return DirectInstance(first, settings=self.config.baseline, application_name=self.name)
        return RoutedInstance(first, second, settings=self.config.target)

    def _measure(
        self, kind: str, name: str, action: Callable[[], None], *, cold: bool = False
    ) -> None:
        started = time.perf_counter()
        error: Exception | None = None
        try:
            action()
        except Exception as exc:  # every failure is counted, by its kind
            error = RequestFailed(failure_label(exc))
        elapsed = (time.perf_counter() - started) * 1000
        if error is None:
            self.succeeded_ms.append(elapsed)
            if cold:
                self.cold_ms.append(elapsed)
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=elapsed,
            response_length=0,
            exception=error,
            context={},
        )

    @task
    def request(self) -> None:
        if self.budget[0] <= 0:
            raise StopUser()
        self.budget[0] -= 1
        self.instances.recycle_if_due()
        operation = self.workload.choose(self.rng)
        params = pick_params(operation, self.samples, self.rng)

        def run() -> None:
            self.instances.instance().run(operation, params)

        self._measure(operation.kind, operation.name, run, cold=self.instances.cold)

    def on_stop(self) -> None:
        self.instances.close()
