"""The gate on PostgreSQL 15 with PgBouncer 1.24 (``--provider docker --pgbouncer 1.24``).

Not in the default test run: PgBouncer 1.24 runs from the trixie image (about 3.5 min
to build cold; ``harness image build --pg-version 17`` first, or the gate builds it),
and each gate on docker runs four containers. With the application's traffic, it
holds that PgBouncer 1.24, which keeps protocol-level prepared statements in
transaction pooling, fixes what the as-written plan's preparing driver does behind
1.18: ``sessions.prepared_statements`` passes and no request meets a prepared
statement of another server connection, while every other check fails as on the
local PgBouncer 1.18; the corrected plan stays SAFE. Run with
``pytest benchmarks/test_gate_pgbouncer.py -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "15 with 1.18, local": ["--provider", "local"],
    "15 with 1.24, docker": ["--provider", "docker", "--pg-version", "15", "--pgbouncer", "1.24"],
}
# PgBouncer 1.24 keeps the as-written Prisma clients' prepared statements; 1.18 does not.
DIFFER = {"sessions.prepared_statements"}


def _gate(plan: str, target: str, reports: Path) -> tuple[int, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(ROOT / "plans" / plan),
         "--traffic-clients", "8", "--reports", str(reports), *TARGETS[target]],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=1200,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    doc = json.loads((reports / "gate.json").read_text())
    print(f"{target:22} {plan:11} exit {done.returncode} "
          f"{time.perf_counter() - started:6.1f} sec wall, {doc['seconds']} sec gate; "
          f"PostgreSQL {doc.get('postgresql')}, PgBouncer {doc.get('pgbouncer')}")  # fmt: skip
    return done.returncode, doc


def _preparing_failures(doc: dict[str, object]) -> list[str]:
    checks = doc["checks"]
    assert isinstance(checks, list)
    (errors,) = [c for c in checks if c["name"] == "traffic.no_errors"]
    return [d for d in errors["details"] if '"_pg3_' in d]


@pytest.mark.docker
@pytest.mark.slow
def test_pgbouncer_1_24_keeps_the_as_written_drivers_prepared_statements(tmp_path: Path) -> None:
    local, docker = TARGETS
    code, doc = _gate("kct", docker, tmp_path / "kct")
    assert code == 0, doc["failed"]
    assert str(doc["pgbouncer"]).startswith("1.24"), doc["pgbouncer"]
    assert str(doc["postgresql"]).startswith("15"), doc["postgresql"]

    failed: dict[str, set[str]] = {}
    for target in (local, docker):
        code, doc = _gate("as-written", target, tmp_path / target.replace(" ", "-"))
        assert code == 1
        names = doc["failed"]
        assert isinstance(names, list)
        failed[target] = {str(n) for n in names}
        if target == docker:
            assert str(doc["pgbouncer"]).startswith("1.24"), doc["pgbouncer"]
            assert _preparing_failures(doc) == []
        else:
            assert str(doc["pgbouncer"]).startswith("1.18"), doc["pgbouncer"]
            assert _preparing_failures(doc) != []
    assert failed[docker] == failed[local] - DIFFER
    assert failed[local] >= DIFFER
