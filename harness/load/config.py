"""The comparison's numbers, read from one TOML file with a reason for each.

The shipped file (``loadtests/compare.toml``) holds every number; a file given
with ``--config`` overrides any of them. A key or section the file does not know
is refused before any load starts: a misspelt ``pool_max_sise`` would otherwise
leave the default in force and the comparison would measure something else.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = [
    "DEFAULT_CONFIG",
    "BaselineSettings",
    "InstanceSettings",
    "LoadConfig",
    "MachineSettings",
    "NetworkSettings",
    "PgbenchSettings",
    "RunSettings",
    "SweepSettings",
    "TargetSettings",
    "Targets",
    "load_config",
]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "loadtests" / "compare.toml"


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    #: the plan whose [workload] runs and which migrates the target, relative to the
    #: directory the command runs in (the repository's root for the shipped file)
    plan: str
    users: int
    spawn_rate: float
    duration: int
    seed: int
    max_duration: int
    max_users: int
    max_requests: int
    stop_timeout: int


@dataclass(frozen=True, kw_only=True)
class Targets:
    """The plan's success metrics, as fractions (0.80 is "reduced by 80%")."""

    error_reduction: float
    p95_reduction: float


DRIVERS = ("pool", "per_request")


@dataclass(frozen=True, kw_only=True)
class InstanceSettings:
    """One application instance: its pace, how long it lives and how it ends (seconds)."""

    think_time_min: float
    think_time_max: float
    lifetime: float
    lifetime_jitter: float
    #: "pool": each instance keeps pools for its lifetime; "per_request": a driver without
    #: a pool opens a connection for every request and closes it after
    driver: str
    #: the share of instances the platform suspends at the end of their life instead of
    #: stopping them: their connections stay open, idle, for ``suspended_for`` seconds
    suspended_share: float
    suspended_for: float
    #: the share of instances whose lifetimes end together (at multiples of ``lifetime``
    #: on the wall clock), so that they cold-start, and connect, in the same second
    cold_start_share: float


@dataclass(frozen=True, kw_only=True)
class BaselineSettings:
    max_connections: int
    pool_max_size: int
    pool_timeout: float
    connect_timeout: float


@dataclass(frozen=True, kw_only=True)
class TargetSettings:
    max_connections: int
    writer_min_size: int
    writer_max_size: int
    reader_min_size: int
    reader_max_size: int
    writer_max_idle: float
    reader_max_idle: float
    pool_timeout: float
    connect_timeout: float
    writer_pool_mode: str
    reader_pool_mode: str
    writer_max_client_conn: int
    writer_default_pool_size: int
    writer_reserve_pool_size: int
    reader_max_client_conn: int
    reader_default_pool_size: int
    reader_reserve_pool_size: int


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """What a new connection costs on the servers the comparison starts."""

    #: TLS and SCRAM-SHA-256 on every TCP connection of both sides, PgBouncer's server
    #: side included, as a hosted database demands; false: trust on plain loopback
    tls: bool


@dataclass(frozen=True, kw_only=True)
class MachineSettings:
    """How the local comparison shares this machine's cores (:mod:`harness.load.pinning`)."""

    #: Locust on cores of its own, the servers and PgBouncers on the rest
    pin_cpus: bool


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    instances: tuple[int, ...]
    duration: int
    break_error_rate: float
    break_p95_ms: float


@dataclass(frozen=True, kw_only=True)
class PgbenchSettings:
    duration: int
    jobs: int


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    run: RunSettings
    targets: Targets
    instance: InstanceSettings
    mix: dict[str, int]
    baseline: BaselineSettings
    target: TargetSettings
    network: NetworkSettings
    machine: MachineSettings
    sweep: SweepSettings
    pgbench: PgbenchSettings
    source: str = ""
    #: ``section.key`` of every number the ``--config`` file gave (not the shipped file's)
    overridden: frozenset[str] = frozenset()

    def with_run(self, **changes: Any) -> LoadConfig:
        """The same numbers with some of ``[run]`` replaced (from the command line)."""
        changed = replace(self, run=replace(self.run, **changes))
        changed.validate()
        return changed

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["sweep"]["instances"] = list(self.sweep.instances)
        out["overridden"] = sorted(self.overridden)
        return out

    def validate(self) -> None:
        """Numbers that cannot describe a run; every message names the key and the fix."""
        where = self.source or "the load config"
        run = self.run
        if run.users < 1:
            raise UsageError(f"{where}: users must be at least 1, got {run.users}")
        if run.users > run.max_users:
            raise UsageError(
                f"{where}: {run.users} users is over the cap of {run.max_users} "
                "([run] max_users); lower --users or raise the cap"
            )
        if not 1 <= run.duration <= run.max_duration:
            raise UsageError(
                f"{where}: a duration of {run.duration} s is outside 1..{run.max_duration} s "
                "([run] max_duration); choose a shorter --duration"
            )
        if run.spawn_rate <= 0:
            raise UsageError(f"{where}: spawn_rate must be > 0, got {run.spawn_rate}")
        if run.max_requests < 1:
            raise UsageError(f"{where}: max_requests must be at least 1")
        inst = self.instance
        if not 0 <= inst.think_time_min <= inst.think_time_max:
            raise UsageError(
                f"{where}: think times must satisfy 0 <= think_time_min <= think_time_max, "
                f"got {inst.think_time_min} and {inst.think_time_max}"
            )
        if inst.lifetime <= 0 or not 0 <= inst.lifetime_jitter < 1:
            raise UsageError(
                f"{where}: lifetime must be > 0 s and lifetime_jitter in [0, 1), got "
                f"{inst.lifetime} and {inst.lifetime_jitter}"
            )
        if inst.driver not in DRIVERS:
            raise UsageError(
                f"{where}: [instance] driver = {inst.driver!r}; the drivers are "
                f"{', '.join(DRIVERS)}"
            )
        for name in ("suspended_share", "cold_start_share"):
            if not 0 <= getattr(inst, name) <= 1:
                raise UsageError(f"{where}: [instance] {name} is a fraction in 0..1")
        idle = min(self.target.writer_max_idle, self.target.reader_max_idle)
        if inst.suspended_share and not 0 < inst.suspended_for < idle:
            # A suspended instance's timers do not fire; the pools' idle timers here would,
            # and close the connections the suspension is meant to leave open.
            raise UsageError(
                f"{where}: [instance] suspended_for must be above 0 and under the target "
                f"pools' shortest max_idle ({idle:g} s), got {inst.suspended_for:g}"
            )
        if self.mix and (any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) < 1):
            raise UsageError(
                f"{where}: [mix] needs non-negative weights, at least one above 0 (or no keys, "
                "to run the plan's own [workload] weights)"
            )
        sweep = self.sweep
        if not sweep.instances or any(n < 1 or n > run.max_users for n in sweep.instances):
            raise UsageError(
                f"{where}: [sweep] instances must be between 1 and {run.max_users}, "
                f"got {list(sweep.instances)}"
            )
        if not 1 <= sweep.duration <= run.max_duration:
            raise UsageError(f"{where}: [sweep] duration must be within 1..{run.max_duration} s")
        if not 1 <= self.pgbench.duration <= run.max_duration or self.pgbench.jobs < 1:
            raise UsageError(f"{where}: [pgbench] duration must be within 1..{run.max_duration} s")
        for name, fraction in (
            ("error_reduction", self.targets.error_reduction),
            ("p95_reduction", self.targets.p95_reduction),
        ):
            if not 0 <= fraction <= 1:
                raise UsageError(f"{where}: [targets] {name} is a fraction in 0..1, got {fraction}")
        for role in ("writer", "reader"):
            mode = getattr(self.target, f"{role}_pool_mode")
            if mode not in ("session", "transaction", "statement"):
                raise UsageError(
                    f"{where}: [target] {role}_pool_mode = {mode!r}; PgBouncer's pool modes "
                    "are session, transaction, statement"
                )


_SECTIONS: dict[str, type[Any]] = {
    "run": RunSettings,
    "targets": Targets,
    "instance": InstanceSettings,
    "baseline": BaselineSettings,
    "target": TargetSettings,
    "network": NetworkSettings,
    "machine": MachineSettings,
    "sweep": SweepSettings,
    "pgbench": PgbenchSettings,
}


def _typed(value: object, *, kind: str, where: str) -> object:
    """TOML's value checked against the field's annotation (ints pass for floats)."""
    if kind == "str" and isinstance(value, str) and value:
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if (
        kind.startswith("tuple")
        and isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    said = {
        "tuple[int, ...]": "a list of integers",
        "str": "a non-empty string",
        "bool": "true or false",
    }
    raise UsageError(f"{where} must be {said.get(kind, kind)}")


def _merge(base: dict[str, Any], override: dict[str, Any], *, source: str) -> dict[str, Any]:
    known = {*_SECTIONS, "mix"}
    merged = {name: dict(base.get(name, {})) for name in known}
    for name, table in override.items():
        if name not in known:
            raise UsageError(
                f"{source}: unknown section [{name}]; the sections are {', '.join(sorted(known))}"
            )
        if not isinstance(table, dict):
            raise UsageError(f"{source}: [{name}] must be a table")
        if name != "mix":
            names = {f.name for f in fields(_SECTIONS[name])}
            unknown = sorted(set(table) - names)
            if unknown:
                raise UsageError(
                    f"{source}: unknown key {', '.join(unknown)} in [{name}]; the keys are "
                    f"{', '.join(sorted(names))}"
                )
            merged[name].update(table)
        else:
            merged[name] = dict(table)  # a mix replaces the whole mix: weights go together
    return merged


def _build(
    doc: dict[str, Any], *, source: str, overridden: frozenset[str] = frozenset()
) -> LoadConfig:
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = doc[name]
        values = {}
        for f in fields(cls):
            where = f"{source}: [{name}] {f.name}"
            if f.name not in table:
                raise UsageError(f"{where} is missing; copy it from {DEFAULT_CONFIG.name}")
            values[f.name] = _typed(table[f.name], kind=str(f.type), where=where)
        sections[name] = cls(**values)
    mix: dict[str, int] = {}
    for name, weight in doc["mix"].items():
        if not isinstance(weight, int) or isinstance(weight, bool):
            raise UsageError(f"{source}: [mix] {name!r} must be an integer weight")
        mix[name] = weight
    config = LoadConfig(mix=mix, source=source, overridden=overridden, **sections)
    config.validate()
    return config


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"load config {path}: no such file; pass --config FILE") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"load config {path} is not valid TOML: {exc}") from None


def load_config(path: Path | None = None) -> LoadConfig:
    """The shipped numbers, overridden by ``path``'s where it gives any."""
    base = _read(DEFAULT_CONFIG)
    doc = _merge(base, {}, source=str(DEFAULT_CONFIG))
    source = str(DEFAULT_CONFIG)
    overridden: frozenset[str] = frozenset()
    if path is not None and path.resolve() != DEFAULT_CONFIG:
        given = _read(path)
        doc = _merge(doc, given, source=str(path))
        source = str(path)
        overridden = frozenset(
            f"{name}.{key}"
            for name, table in given.items()
            if isinstance(table, dict)
            for key in table
        )
    return _build(doc, source=source, overridden=overridden)
