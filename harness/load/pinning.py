"""Which cores each node of a local comparison runs on: the load generator apart.

In production the retailer's instances run on machines of their own and the
database on its own. On one machine, unpinned, Locust's processes take cores the
servers would otherwise have, and every hop of a request waits behind them. So
the load generator gets cores of its own (one per Locust process, leaving at
least one), and the servers and PgBouncers of the architecture under load get
the rest: a core or more each where there are enough, all of them shared
otherwise. Both architectures get the same cores for their nodes, so neither
side is given more machine than the other; the target's four nodes share what
the baseline's one primary has alone, which counts against the target.

Affinity only: processes that are not the comparison's (the machine's other
work) may still run on any core, and no CPU quota is set. The report says which
node ran where (:func:`placement_lines`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.load.cpu import process_tree

__all__ = ["Placement", "available_cores", "pin_nodes", "pin_tree", "place", "placement_lines"]

_PROC = Path("/proc")


@dataclass(frozen=True, kw_only=True)
class Placement:
    """The cores of each node (servers and PgBouncers by name) and of the load generator."""

    nodes: dict[str, tuple[int, ...]]
    generator: tuple[int, ...]

    def to_json(self) -> dict[str, list[int]]:
        return {**{n: list(c) for n, c in self.nodes.items()}, "Locust": list(self.generator)}


def available_cores() -> tuple[int, ...]:
    """The cores this process may run on (a container's or a taskset's share)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def place(nodes: Iterable[str], *, cores: tuple[int, ...], generators: int) -> Placement | None:
    """The cores for ``nodes`` and for ``generators`` Locust processes; None on one core
    (nothing to set apart). Whole cores only: nodes share their cores when there are
    fewer cores than nodes."""
    names = list(nodes)
    if len(cores) < 2 or not names:
        return None
    apart = min(len(cores) - 1, max(1, generators))
    generator, rest = cores[len(cores) - apart :], cores[: len(cores) - apart]
    if len(names) > len(rest):
        return Placement(nodes={n: rest for n in names}, generator=generator)
    each, spare = divmod(len(rest), len(names))
    out: dict[str, tuple[int, ...]] = {}
    start = 0
    for i, name in enumerate(names):
        width = each + (1 if i < spare else 0)  # the first nodes (the primary) get the spare
        out[name] = rest[start : start + width]
        start += width
    return Placement(nodes=out, generator=generator)


def pin_tree(root: int, cores: Iterable[int]) -> None:
    """Every thread of ``root`` and of its descendants onto ``cores``; children forked
    later (a server's new backends) inherit it. A process that ends meanwhile is skipped."""
    wanted = set(cores)
    for pid in process_tree(root):
        try:
            threads = [int(t.name) for t in (_PROC / str(pid) / "task").iterdir()]
        except OSError:
            continue
        for tid in threads:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(tid, wanted)


def pin_nodes(placement: Placement, pids: Mapping[str, int]) -> None:
    for name, pid in pids.items():
        if name in placement.nodes:
            pin_tree(pid, placement.nodes[name])


def placement_lines(placements: Mapping[str, Mapping[str, list[int]]] | None) -> list[str]:
    """What ran on which cores, per architecture, in words."""
    if not placements:
        return ["CPU placement: not pinned; the servers, PgBouncers and Locust shared every core"]
    lines = []
    for architecture, nodes in placements.items():
        by_cores: dict[tuple[int, ...], list[str]] = {}
        for name, cores in nodes.items():
            by_cores.setdefault(tuple(cores), []).append(name)
        parts = [
            f"{' and '.join(names)} on {_cores(cores)}" + (" (shared)" if len(names) > 1 else "")
            for cores, names in by_cores.items()
        ]
        lines.append(f"CPU placement, {architecture}: " + "; ".join(parts))
    return lines


def _cores(cores: tuple[int, ...]) -> str:
    return ("core " if len(cores) == 1 else "cores ") + ", ".join(str(c) for c in cores)
