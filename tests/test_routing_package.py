"""The package face: what an application imports is the router, and the router has no cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(harness.__file__).parent
# What an application must not pay for when it only routes queries.
ENGINE = (
    "harness.gate",
    "harness.runner",
    "harness.catalog",
    "harness.invariants",
    "harness.cluster",
    "harness.plan",
    "harness.legacy",
    "harness.monitor",
    "harness.cli",
)


def _loaded_by(statement: str) -> list[str]:
    """The harness modules a fresh interpreter holds after ``statement``."""
    probe = f"import sys\n{statement}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return [m for m in json.loads(done.stdout) if m == "harness" or m.startswith("harness.")]


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the harness modules it imports (at run time or for type checking)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package.removeprefix("harness.")).rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t.startswith("harness")}
    return graph


def test_importing_the_router_loads_no_engine_code() -> None:
    loaded = _loaded_by("import harness.routing")
    assert "harness.routing.database" in loaded
    assert [m for m in loaded if m.startswith(ENGINE)] == []


def test_the_package_root_still_offers_the_gate_on_first_use() -> None:
    loaded = _loaded_by("import harness")
    assert [m for m in loaded if m.startswith(ENGINE)] == []
    assert "harness.gate" in _loaded_by("from harness import run_gate")
    assert harness.run_gate.__module__ == "harness.gate"


def test_routing_modules_import_each_other_in_one_direction_only() -> None:
    graph = _imports("harness.routing")
    assert "harness.routing.database" in graph

    def cycle_from(start: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for target in sorted(graph.get(start, ())):
            if target in path:
                return (*path, target)
            found = cycle_from(target, (*path, target))
            if found:
                return found
        return None

    assert [cycle_from(module, (module,)) for module in graph] == [None] * len(graph)


def test_monitoring_and_the_router_share_connections_not_each_other() -> None:
    monitor = set().union(*_imports("harness.monitor").values())
    routing = set().union(*_imports("harness.routing").values())
    assert not {m for m in monitor if m.startswith("harness.routing")}
    assert "harness.connections" in monitor & routing
    assert not {m for m in routing if m.startswith(("harness.legacy", "harness.monitor"))}
