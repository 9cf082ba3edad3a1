r"""The application's traffic, as ``plan.toml`` describes it: who runs what, how often.

A plan's promise of zero downtime is about the application, so the gate runs the
application's own requests through every step: named reads and writes, each run by
one of the plan's roles through the path the application uses (reads on the
PgBouncer reader in front of the replica, writes on the PgBouncer writer in front
of the primary), with parameters drawn from the data. A plan without a
``[workload]`` section gets the simple case: its ``[sessions] queries`` and a
one-row read of each table, run as the roles its rules let read them
(``harness/plan/default_workload.py``).

The format (see also ``docs/workload.md``)::

    [workload]
    clients = 16                  # concurrent clients (--traffic-clients overrides)
    think_time = "20ms"           # pause between two requests of one client
    baseline = "1s"               # traffic before the first step: the stall baseline
    prepare_threshold = 0         # the driver prepares from a statement's n-th run on
                                  # (0: every one, as Prisma does); left out: it never does
    request_timeout = "10s"       # the application's bound on a request (its statement
                                  # timeout): one that runs longer is cancelled and fails

    [workload.stall]              # traffic.stall: a step fails when an application
    lock_wait = "200ms"           # request waited longer than this on a lock the
                                  # migration held (or queued for), whatever the load

    [[workload.queries]]
    name = "product_detail"       # unique; how reports name the request
    role = "app_rw"              # one of [layout] roles: it logs in as this role
    kind = "read"                 # read: PgBouncer reader, read-only transaction
    weight = 10                   # relative frequency
    params = "SELECT id AS product_id FROM products LIMIT 500"   # run once, before
    sql = "SELECT * FROM products WHERE id = %(product_id)s"     # the migration

    [[workload.queries]]
    name = "book_appointment"
    role = "app_rw"
    kind = "write"                # write: PgBouncer writer, one transaction
    params = "SELECT id AS customer_id FROM customers LIMIT 500"
    sql = [                       # statements in order; a RETURNING row's columns
      '''INSERT INTO appointments (customer_id, kind, scheduled_at, notes)
         VALUES (%(customer_id)s, 'fitting', now(), %(token)s)
         RETURNING id AS appointment_id''',
    ]                             # become parameters of the statements after it
    verify = "SELECT 1 FROM appointments WHERE id = %(appointment_id)s AND notes = %(token)s"

``%(token)s`` is a value unique to each request. ``verify`` is required for writes:
a query that returns a row when the write is in place; after the gate it is run for
every acknowledged write (the latest one per parameter row), on the primary and on
the replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PlanError

__all__ = [
    "KINDS",
    "StallLimits",
    "Workload",
    "WorkloadQuery",
    "parse_duration",
    "parse_workload",
]

KINDS = ("read", "write")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DURATION = re.compile(r"^(?P<n>\d+(\.\d+)?)\s*(?P<unit>ms|s)$")
_WRITE_WORDS = re.compile(
    r"^\s*(WITH\b.*\b)?(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|COPY)\b", re.IGNORECASE | re.DOTALL
)
_PLACEHOLDER = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s")
_QUERY_KEYS = frozenset({"name", "role", "kind", "weight", "params", "sql", "verify"})
_WORKLOAD_KEYS = frozenset(
    {
        "clients",
        "think_time",
        "baseline",
        "stall",
        "queries",
        "prepare_threshold",
        "request_timeout",
    }
)
_STALL_KEYS = frozenset({"lock_wait"})
# The latency bounds traffic.stall used before it judged lock waits; still accepted.
_FORMER_STALL_KEYS = frozenset({"p99", "max", "ratio"})
MAX_CLIENTS = 64
# sec: a request bounded below this fails on a busy machine; above it, a gate waits long
MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT = 0.1, 300.0


def parse_duration(value: object, *, where: str) -> float:
    """Seconds from ``"250ms"`` or ``"1.5s"``; a bare number is refused (which unit?)."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise PlanError(f'{where} must be a duration with a unit, like "250ms" or "1s", '
                        f"not {value!r}")  # fmt: skip
    n = float(m["n"])
    return n / 1000 if m["unit"] == "ms" else n


def placeholders(text: str) -> set[str]:
    return {m["name"] for m in _PLACEHOLDER.finditer(text)}


@dataclass(frozen=True)
class StallLimits:
    """``traffic.stall``: the longest an application request may wait on the migration's lock.

    A bound on who blocked whom, not on latency: latency moves with the machine's
    load, a lock wait behind the migration does not go away on a quiet machine.
    ``ignored`` names the keys of the former latency bounds (``p99``, ``max``,
    ``ratio``) a plan still sets: accepted, so an older plan.toml keeps loading,
    and named in the check's message, since they no longer judge.
    """

    lock_wait: float = 0.2
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkloadQuery:
    """One request of the application; ``role`` None means the harness's own login."""

    name: str
    role: str | None
    kind: str  # "read" or "write"
    weight: int
    sql: tuple[str, ...]
    params: str | None = None
    verify: str | None = None

    @property
    def path(self) -> str:
        """The way in the application uses for it: the PgBouncer writer or reader."""
        return "writer" if self.kind == "write" else "reader"


@dataclass(frozen=True)
class Workload:
    queries: tuple[WorkloadQuery, ...]
    clients: int = 16
    think_time: float = 0.02
    baseline: float = 1.0
    stall: StallLimits = StallLimits()
    declared: bool = True  # False: the simple case, made from [sessions] queries
    # The application's driver prepares a statement from its n-th run on (psycopg's
    # prepare_threshold; 0: every statement, as Prisma without pgbouncer=true); None:
    # it never prepares. See harness/invariants/prepared.py.
    prepare_threshold: int | None = None
    request_timeout: float = 10.0  # sec: the application's statement timeout per request

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(sorted({q.role for q in self.queries if q.role is not None}))

    def kinds_of(self, role: str) -> set[str]:
        return {q.kind for q in self.queries if q.role == role}


def _sql_list(value: object, *, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(s, str) and s.strip() for s in items)
    ):
        raise PlanError(f"{where}: sql must be a statement or a non-empty list of statements")
    return tuple(s.strip().rstrip(";") for s in items)


def _query(entry: object, *, where: str, roles: tuple[str, ...]) -> WorkloadQuery:
    if not isinstance(entry, dict):
        raise PlanError(f"{where} must be a table with name, role, kind, sql")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlanError(f"{where}: name = {name!r}; give each query a lower-case name")
    where = f"{where} ({name})"
    unknown = set(entry) - _QUERY_KEYS
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a query has "
                        f"{', '.join(sorted(_QUERY_KEYS))}")  # fmt: skip
    role = entry.get("role")
    if role not in roles:
        known = ", ".join(roles) or "none: add them to [layout] roles"
        raise PlanError(
            f"{where}: role {role!r} is not one of the plan's roles ({known}); the "
            "application's requests log in as a role the plan declares"
        )
    kind = entry.get("kind")
    if kind not in KINDS:
        raise PlanError(f"{where}: kind = {kind!r}; say read or write")
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
        raise PlanError(f"{where}: weight must be a whole number 1..1000, got {weight!r}")
    statements = _sql_list(entry.get("sql"), where=where)
    if kind == "read":
        writing = [s for s in statements if _WRITE_WORDS.match(s)]
        if writing or len(statements) != 1:
            raise PlanError(
                f"{where}: marked read, but "
                + (f"`{writing[0][:60]}` writes" if writing else "it has several statements")
                + '; reads go to the replica, so mark it kind = "write" or make it one SELECT'
            )
    params = entry.get("params")
    if params is not None and (not isinstance(params, str) or not params.strip()):
        raise PlanError(f"{where}: params must be one SELECT giving the parameters' columns")
    verify = entry.get("verify")
    if kind == "write" and (not isinstance(verify, str) or not verify.strip()):
        example = "SELECT 1 FROM orders WHERE id = %(order_id)s"
        raise PlanError(
            f"{where}: a write needs verify, a SELECT that returns a row when the write "
            f"is in place (for example {example})"
        )
    if kind == "read" and verify is not None:
        raise PlanError(f"{where}: verify is for writes; a read has nothing to keep")
    return WorkloadQuery(
        name=name,
        role=role,
        kind=kind,
        weight=weight,
        sql=statements,
        params=params.strip() if isinstance(params, str) else None,
        verify=verify.strip() if isinstance(verify, str) else None,
    )


def _stall(raw: object, *, where: str) -> StallLimits:
    if not isinstance(raw, dict) or set(raw) - _STALL_KEYS - _FORMER_STALL_KEYS:
        raise PlanError(
            f'{where} has lock_wait (like "200ms"): the longest an application request may '
            "wait on a lock the migration holds"
        )
    lock_wait = parse_duration(raw.get("lock_wait", "200ms"), where=f"{where} lock_wait")
    if not 0 < lock_wait <= 60:
        raise PlanError(f"{where}: lock_wait must be more than 0 and at most 60s")
    return StallLimits(lock_wait=lock_wait, ignored=tuple(sorted(set(raw) & _FORMER_STALL_KEYS)))


def parse_workload(raw: object, *, toml_path: Path, roles: tuple[str, ...]) -> Workload | None:
    """The ``[workload]`` section, validated; None when the plan has none."""
    if raw is None:
        return None
    where = f"{toml_path}: [workload]"
    if not isinstance(raw, dict):
        raise PlanError(f"{where} must be a table")
    unknown = set(raw) - _WORKLOAD_KEYS
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; it has "
                        f"{', '.join(sorted(_WORKLOAD_KEYS))}")  # fmt: skip
    clients = raw.get("clients", 16)
    if isinstance(clients, bool) or not isinstance(clients, int) or not 1 <= clients <= MAX_CLIENTS:
        raise PlanError(f"{where}: clients must be a whole number 1..{MAX_CLIENTS}")
    stall = _stall(raw.get("stall", {}), where=f"{where}.stall")
    threshold = raw.get("prepare_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
    ):
        raise PlanError(
            f"{where}: prepare_threshold must be a whole number 0 or more (the run from which "
            f"the driver prepares a statement), got {threshold!r}; leave it out for a driver "
            "that never prepares"
        )
    entries = raw.get("queries")
    if not isinstance(entries, list) or not entries:
        raise PlanError(f"{where}: needs [[workload.queries]], at least one")
    queries = tuple(
        _query(e, where=f"{toml_path}: [[workload.queries]] #{i}", roles=roles)
        for i, e in enumerate(entries, 1)
    )
    names = [q.name for q in queries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PlanError(f"{where}: query name(s) {', '.join(twice)} used twice")
    return Workload(
        queries=queries,
        clients=clients,
        think_time=parse_duration(raw.get("think_time", "20ms"), where=f"{where} think_time"),
        baseline=parse_duration(raw.get("baseline", "1s"), where=f"{where} baseline"),
        stall=stall,
        prepare_threshold=threshold,
        request_timeout=_request_timeout(raw.get("request_timeout", "10s"), where=where),
    )


def _request_timeout(value: object, *, where: str) -> float:
    seconds = parse_duration(value, where=f"{where} request_timeout")
    if not MIN_REQUEST_TIMEOUT <= seconds <= MAX_REQUEST_TIMEOUT:
        raise PlanError(
            f"{where}: request_timeout must be {MIN_REQUEST_TIMEOUT * 1000:.0f}ms to "
            f"{MAX_REQUEST_TIMEOUT:.0f}s (the application's own bound on a request), got {value!r}"
        )
    return seconds
