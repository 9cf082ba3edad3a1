"""The plan's workload against one architecture: Locust's CLI, master and workers alike.

``harness load compare`` runs this file once per architecture; it also runs on
its own, with Locust's CLI (see docs/load-comparison.md)::

    PGCUTOVER_LOAD_ARCH=baseline DATABASE_URL=postgresql://…primary… \\
        locust -f loadtests/locustfile.py --headless -u 150 -r 10 -t 60s --csv reports/load/baseline
    PGCUTOVER_LOAD_ARCH=target DATABASE_URL=…pgbouncer writer… DATABASE_READONLY_URL=…reader… \\
        locust -f loadtests/locustfile.py --headless -u 150 -r 10 -t 60s --csv reports/load/target

Environment: ``PGCUTOVER_LOAD_PLAN`` (the plan whose ``[workload]`` runs, default
the config's ``[run] plan``), ``PGCUTOVER_LOAD_ARCH`` (``baseline``: DATABASE_URL is the primary
itself, no pooler; ``target``, the default: DATABASE_URL is PgBouncer's writer and
DATABASE_READONLY_URL its reader), ``PGCUTOVER_LOAD_CONFIG`` (default
loadtests/compare.toml), ``PGCUTOVER_LOAD_SEED``, ``PGCUTOVER_LOAD_WORKERS`` (the worker
processes sharing [run] max_requests, default 1), ``PGCUTOVER_LOAD_LATENCIES`` (a
prefix for the successful requests' times, written at exit), ``PGCUTOVER_LOAD_TARGET`` (the target's
``[target]`` numbers as JSON, which replace the config's and the plan's), ``PGCUTOVER_LOAD_LOOP`` (a
prefix for how late this process's event loop ran, written at exit; see
:func:`_watch_loop`). ``PGCUTOVER_ROUTING=writer``
sends a target's reads to the writer too.

Each Locust user is one application instance with its own pool; see pguser.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from pguser import InstanceUser

from harness.errors import UsageError
from harness.load.config import TargetSettings, load_config
from harness.load.instance import ARCHITECTURES, load_samples
from harness.load.planned import with_plan
from harness.load.results import LOOP_TICK_MS
from harness.load.workload import workload_for
from harness.plan import load_plan
from harness.routing import urls_from_env

ROOT = Path(__file__).resolve().parents[1]


def _settings() -> tuple[str, Any, tuple[str, str | None], Path]:
    architecture = os.environ.get("PGCUTOVER_LOAD_ARCH", "target")
    if architecture not in ARCHITECTURES:
        raise UsageError(
            f"PGCUTOVER_LOAD_ARCH={architecture!r} is not an architecture; "
            f"use one of {', '.join(ARCHITECTURES)}"
        )
    config_path = os.environ.get("PGCUTOVER_LOAD_CONFIG")
    config = load_config(Path(config_path) if config_path else None)
    if os.environ.get("PGCUTOVER_LOAD_SEED"):
        config = config.with_run(seed=int(os.environ["PGCUTOVER_LOAD_SEED"]))
    writer, reader = urls_from_env(os.environ)
    if architecture == "baseline" or os.environ.get("PGCUTOVER_ROUTING") == "writer":
        reader = None
    plan = Path(os.environ.get("PGCUTOVER_LOAD_PLAN") or ROOT / config.run.plan)
    # The target's instances open the plan's [application] pools, as its PgBouncers run its
    # [pgbouncer] settings; or the pools the harness runs this side with (a tune's candidate,
    # another plan's pooling in a sweep), which it passes whole.
    config = with_plan(config, load_plan(plan))
    if os.environ.get("PGCUTOVER_LOAD_TARGET"):
        given = json.loads(os.environ["PGCUTOVER_LOAD_TARGET"])
        config = dataclasses.replace(config, target=TargetSettings(**given))
    return architecture, config, (writer, reader), plan


_ARCH, _CONFIG, _URLS, _PLAN = _settings()
_WORKERS = int(os.environ.get("PGCUTOVER_LOAD_WORKERS") or 1)
# Every refused connection is counted as a failed request, by kind; psycopg_pool's
# own warning for each background retry would only bury Locust's output.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


class Instance(InstanceUser):
    """One instance of the application (a serverless function), running the plan's workload."""

    config = _CONFIG
    workload = workload_for(_PLAN).weighted(_CONFIG.mix)
    architecture = _ARCH
    urls = _URLS
    # [run] max_requests caps the whole run: with N worker processes, each takes 1/N of it.
    budget = [
        math.ceil(_CONFIG.run.max_requests / int(os.environ.get("PGCUTOVER_LOAD_WORKERS") or 1))
    ]

    def on_start(self) -> None:
        _ensure_samples()
        super().on_start()


# Locust patches threading: under gevent this lock makes the other users wait while
# the first one reads the samples, instead of each opening a connection of its own
# (which, at a small max_connections, the server would refuse).
_samples_lock = threading.Lock()


def _ensure_samples(**_: Any) -> None:
    """The parameter samples, read once per process that runs users (master or worker)."""
    with _samples_lock:
        if not Instance.samples:
            Instance.samples = load_samples(_URLS[0], Instance.workload)


def _write(variable: str, values: list[float], suffix: str = "") -> None:
    """``values`` for the report at the prefix ``variable`` names (and ``suffix``), one file
    per process (master, workers)."""
    prefix = os.environ.get(variable)
    if prefix and values:
        Path(f"{prefix}{suffix}.{os.getpid()}.json").write_text(json.dumps(values))


#: how many successful requests this process had timed when its last instance started
_started_at: list[int] = []


def _mark_started(**_: Any) -> None:
    _started_at[:] = [len(Instance.succeeded_ms)]


def _write_latencies(**_: Any) -> None:
    """Successful requests' times: all of them, and those after the last instance started
    (the fleet running, its start-up behind it), which say what the start-up cost."""
    _write("PGCUTOVER_LOAD_LATENCIES", Instance.succeeded_ms)
    _write("PGCUTOVER_LOAD_LATENCIES", Instance.cold_ms, "_cold")
    if _started_at:
        _write("PGCUTOVER_LOAD_LATENCIES", Instance.succeeded_ms[_started_at[0] :], "_started")


#: how often the loop's watch wakes, in seconds (the report reads its lateness against it)
LOOP_TICK = LOOP_TICK_MS / 1000
#: how late each wake-up of the watch was, in ms (this process)
_loop_late_ms: list[float] = []


def _watch_loop() -> None:
    """How late this process's one event loop runs: every instance of the process shares
    it, so while one instance computes (a TLS handshake, SCRAM's 4,096 PBKDF2 rounds at its
    cold start) every other instance's request waits, and is measured waiting. On separate
    machines an instance waits for its own work only. A greenlet asks to wake every
    ``LOOP_TICK`` and records how late it woke."""
    while True:
        asked = time.perf_counter()
        gevent.sleep(LOOP_TICK)
        _loop_late_ms.append(max(0.0, (time.perf_counter() - asked - LOOP_TICK) * 1000))


def _start_watch(**_: Any) -> None:
    if os.environ.get("PGCUTOVER_LOAD_LOOP"):
        gevent.spawn(_watch_loop)


def _write_loop(**_: Any) -> None:
    _write("PGCUTOVER_LOAD_LOOP", _loop_late_ms)


def _forget_start(**_: Any) -> None:
    """Every instance has started: from here on, as Locust's --reset-stats does for its own."""
    Instance.succeeded_ms.clear()
    Instance.cold_ms.clear()
    _loop_late_ms.clear()


# Locust's EventHook.add_listener carries no annotations.
events.quitting.add_listener(_write_latencies)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write_loop)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_start_watch)  # type: ignore[no-untyped-call]
if os.environ.get("PGCUTOVER_LOAD_AFTER_START"):
    events.spawning_complete.add_listener(_forget_start)  # type: ignore[no-untyped-call]
# After _forget_start, which empties the record: its mark is then 0.
events.spawning_complete.add_listener(_mark_started)  # type: ignore[no-untyped-call]
# Before any user starts, on every node that runs users.
events.test_start.add_listener(_ensure_samples)  # type: ignore[no-untyped-call]
