"""The CPU each node of a local comparison used: what shared this machine's cores, and how much.

On one machine the primary, the replica, both PgBouncers and Locust compete for the
same cores, so a hop through a pooler costs a wait for a core that separate machines
would not. The report says how the CPU was shared: each server's processes (the
postmaster, its backends alive and exited) and each PgBouncer, read from ``/proc``
before and after a run, per request of that run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cpu_seconds", "per_request_ms", "process_tree"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    return text[text.rindex(")") + 2 :].split()


def _processes() -> dict[int, tuple[int, float]]:
    """Every process: its parent's pid and its CPU seconds, its reaped children's included
    (an exited backend's time is in its postmaster's cutime/cstime once reaped)."""
    found = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                # after the name: field 4 is the parent; 14..17 utime, stime, cutime, cstime
                ticks = sum(int(v) for v in fields[11:15])
                found[int(entry.name)] = (int(fields[1]), ticks / _TICKS)
    return found


def _children(table: Mapping[int, tuple[int, float]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        out.setdefault(parent, []).append(pid)
    return out


def _tree(children: Mapping[int, list[int]], root: int) -> list[int]:
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it, as /proc has them now."""
    return _tree(_children(_processes()), root)


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """Each named process tree's CPU seconds so far; a tree whose root is gone is left out."""
    table = _processes()
    children = _children(table)
    return {
        name: sum(table[pid][1] for pid in _tree(children, root))
        for name, root in pids.items()
        if root in table
    }


def per_request_ms(
    before: Mapping[str, float], after: Mapping[str, float], *, requests: int
) -> dict[str, float]:
    """Milliseconds of CPU per request each node spent over a run."""
    if requests < 1:
        return {}
    return {
        name: 1000 * (after[name] - before[name]) / requests for name in after if name in before
    }
