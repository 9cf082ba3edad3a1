"""The gate report's versioned shape, read back into types the renderers can trust.

``gate.json`` is a contract with CI jobs and dashboards, so it carries
``schema_version`` and this module is the one reader of it: the HTML and junit
renderers never index raw dictionaries. The JSON Schema in ``gate.schema.json``
beside this module says the same for tools in other languages; a change that
removes or renames a field raises :data:`SCHEMA_VERSION`, an added optional
field does not. Version 2 added a verdict, ``not_run`` (a check the gate could
not make here), which a reader of version 1 would refuse; a version 1 document
is still read, as one in which every check ran.

Two optional sections come from runs other than the checks themselves:

``traffic`` (in gate.json): the application's traffic during the gate, one
entry per migration or rollback step, in the order they ran::

    "traffic": {
      "clients": 4,                                  # optional
      "baseline": {"p50_ms": 0.9, "p99_ms": 3.0, "max_ms": 7.5},   # optional, before migrating
      "steps": [
        {"step": "up/001_roles.sql", "phase": "migrate", "started_s": 0.0, "seconds": 0.12,
         "requests": 310, "errors": 0, "p50_ms": 1.1, "p99_ms": 4.2, "max_ms": 9.8}
      ]
    }

``load`` (in gate.json, or ``load/summary.json`` beside it): a load comparison,
one entry per configuration that ran the same workload::

    "load": {
      "title": "split reads vs. all on the writer",   # optional
      "runs": [
        {"name": "split", "requests": 12000, "failures": 0, "rps": 398.0,
         "p50_ms": 4.0, "p95_ms": 11.0, "p99_ms": 19.0,
         "timeline": [{"t_s": 0, "rps": 380.0, "p95_ms": 10.0}]}     # timeline optional
      ]
    }
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from harness.errors import ReportError

__all__ = [
    "SCHEMA_VERSION",
    "CheckEntry",
    "GateDocument",
    "LoadRun",
    "LoadSummary",
    "Traffic",
    "TrafficStep",
    "parse_gate",
    "parse_load",
    "parse_traffic",
]

SCHEMA_VERSION = 2
"""2: a check's verdict may be ``not_run`` (with ``not_run`` and ``require_all`` at the top)."""
_READABLE = (1, SCHEMA_VERSION)  # a version 1 document is a version 2 one without not_run
Verdict = Literal["pass", "fail", "warn", "not_run"]
_VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "warn", "not_run")


@dataclass(frozen=True)
class CheckEntry:
    name: str
    verdict: Verdict
    reason: str
    details: tuple[str, ...]


@dataclass(frozen=True)
class TrafficStep:
    step: str
    phase: str
    started_s: float
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Traffic:
    steps: tuple[TrafficStep, ...]
    clients: int | None = None
    baseline_p50_ms: float | None = None
    baseline_p99_ms: float | None = None
    baseline_max_ms: float | None = None


@dataclass(frozen=True)
class LoadPoint:
    t_s: float
    rps: float
    p95_ms: float


@dataclass(frozen=True)
class LoadRun:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    timeline: tuple[LoadPoint, ...] = ()


@dataclass(frozen=True)
class LoadSummary:
    runs: tuple[LoadRun, ...]
    title: str = ""


@dataclass(frozen=True)
class GateDocument:
    """A gate report as read from ``gate.json``; ``extra`` keeps the context fields."""

    plan: str
    verdict: Literal["safe", "unsafe"]
    seconds: float
    checks: tuple[CheckEntry, ...]
    extra: Mapping[str, object]
    traffic: Traffic | None = None
    load: LoadSummary | None = None
    require_all: bool = False  # --require-all: a check that did not run fails the gate

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.verdict == "fail")

    @property
    def not_run(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.verdict == "not_run")


# -- field readers: each names the field's path and what it should have been ---------
def _obj(value: object, *, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ReportError(f"{where} must be an object, not {type(value).__name__}")
    return cast(Mapping[str, object], value)


def _str(doc: Mapping[str, object], key: str, *, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise ReportError(f"{where}.{key} must be a string, not {value!r}")
    return value


def _num(doc: Mapping[str, object], key: str, *, where: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{where}.{key} must be a finite number, not {value!r}")
    if value < 0:
        raise ReportError(f"{where}.{key} must not be negative, got {value!r}")
    return float(value)


def _int(doc: Mapping[str, object], key: str, *, where: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}.{key} must be a whole number ≥ 0, not {value!r}")
    return value


def _opt_num(doc: Mapping[str, object], key: str, *, where: str) -> float | None:
    return None if doc.get(key) is None else _num(doc, key, where=where)


def _list(doc: Mapping[str, object], key: str, *, where: str) -> list[object]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ReportError(f"{where}.{key} must be a list, not {type(value).__name__}")
    return value


def _check(value: object, *, where: str) -> CheckEntry:
    doc = _obj(value, where=where)
    verdict = doc.get("verdict")
    if verdict not in _VERDICTS:
        raise ReportError(
            f"{where}.verdict must be one of pass, fail, warn, not_run, not {verdict!r}"
        )
    details = _list(doc, "details", where=where)
    if not all(isinstance(d, str) for d in details):
        raise ReportError(f"{where}.details must be a list of strings")
    return CheckEntry(
        name=_str(doc, "name", where=where),
        verdict=verdict,
        reason=_str(doc, "reason", where=where),
        details=tuple(cast(list[str], details)),
    )


def parse_traffic(value: object, *, where: str = "traffic") -> Traffic:
    doc = _obj(value, where=where)
    steps = []
    for i, item in enumerate(_list(doc, "steps", where=where)):
        at = f"{where}.steps[{i}]"
        step = _obj(item, where=at)
        steps.append(
            TrafficStep(
                step=_str(step, "step", where=at),
                phase=_str(step, "phase", where=at, default=""),
                started_s=_num(step, "started_s", where=at),
                seconds=_num(step, "seconds", where=at),
                requests=_int(step, "requests", where=at),
                errors=_int(step, "errors", where=at),
                p50_ms=_num(step, "p50_ms", where=at),
                p99_ms=_num(step, "p99_ms", where=at),
                max_ms=_num(step, "max_ms", where=at),
            )
        )
    if not steps:
        raise ReportError(f"{where}.steps is empty: a traffic run has at least one step")
    baseline = _obj(doc.get("baseline", {}), where=f"{where}.baseline")
    clients = doc.get("clients")
    return Traffic(
        steps=tuple(steps),
        clients=_int(doc, "clients", where=where) if clients is not None else None,
        baseline_p50_ms=_opt_num(baseline, "p50_ms", where=f"{where}.baseline"),
        baseline_p99_ms=_opt_num(baseline, "p99_ms", where=f"{where}.baseline"),
        baseline_max_ms=_opt_num(baseline, "max_ms", where=f"{where}.baseline"),
    )


def parse_load(value: object, *, where: str = "load") -> LoadSummary:
    doc = _obj(value, where=where)
    runs = []
    for i, item in enumerate(_list(doc, "runs", where=where)):
        at = f"{where}.runs[{i}]"
        run = _obj(item, where=at)
        timeline = []
        for j, point in enumerate(_list(run, "timeline", where=at)):
            pt = _obj(point, where=f"{at}.timeline[{j}]")
            timeline.append(
                LoadPoint(
                    t_s=_num(pt, "t_s", where=f"{at}.timeline[{j}]"),
                    rps=_num(pt, "rps", where=f"{at}.timeline[{j}]"),
                    p95_ms=_num(pt, "p95_ms", where=f"{at}.timeline[{j}]"),
                )
            )
        runs.append(
            LoadRun(
                name=_str(run, "name", where=at),
                requests=_int(run, "requests", where=at),
                failures=_int(run, "failures", where=at),
                rps=_num(run, "rps", where=at),
                p50_ms=_num(run, "p50_ms", where=at),
                p95_ms=_num(run, "p95_ms", where=at),
                p99_ms=_num(run, "p99_ms", where=at),
                timeline=tuple(timeline),
            )
        )
    if not runs:
        raise ReportError(f"{where}.runs is empty: a load comparison has at least one run")
    return LoadSummary(runs=tuple(runs), title=_str(doc, "title", where=where, default=""))


_CORE = frozenset(
    {"schema_version", "plan", "verdict", "failed", "not_run", "require_all", "seconds", "checks"}
)
_SECTIONS = frozenset({"traffic", "load"})


def parse_gate(value: object, *, where: str = "gate.json") -> GateDocument:
    """Read a gate report; raises :class:`ReportError` naming the first field that is off.

    The optional sections are read here too, so a caller that wants to render a
    report whose section is malformed must parse them itself (see ``write``).
    """
    doc = _obj(value, where=where)
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version not in _READABLE:
        raise ReportError(
            f"{where}: schema_version {version!r} is not one this pgcutover reads "
            f"({', '.join(map(str, _READABLE))}); render it with the pgcutover that wrote it"
        )
    verdict = doc.get("verdict")
    if verdict not in ("safe", "unsafe"):
        raise ReportError(f"{where}.verdict must be 'safe' or 'unsafe', not {verdict!r}")
    checks = tuple(
        _check(c, where=f"{where}.checks[{i}]")
        for i, c in enumerate(_list(doc, "checks", where=where))
    )
    require_all = doc.get("require_all", False)
    if not isinstance(require_all, bool):
        raise ReportError(f"{where}.require_all must be true or false, not {require_all!r}")
    counted = ("fail", "not_run") if require_all else ("fail",)
    computed = "safe" if all(c.verdict not in counted for c in checks) else "unsafe"
    if computed != verdict:
        raise ReportError(
            f"{where}.verdict says {verdict!r} but its checks make it {computed!r}; "
            "the file was edited or written by a broken gate"
        )
    return GateDocument(
        plan=_str(doc, "plan", where=where),
        verdict=verdict,
        seconds=_num(doc, "seconds", where=where),
        checks=checks,
        require_all=require_all,
        extra={k: v for k, v in doc.items() if k not in _CORE | _SECTIONS},
        traffic=parse_traffic(doc["traffic"], where=f"{where}.traffic")
        if doc.get("traffic") is not None
        else None,
        load=parse_load(doc["load"], where=f"{where}.load")
        if doc.get("load") is not None
        else None,
    )
