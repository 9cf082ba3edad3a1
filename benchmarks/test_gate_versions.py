"""The whole gate on PostgreSQL 15 (local and docker) and 17 (docker), timed in one run.

Not in the default test run: the PostgreSQL 17 image is built from Debian trixie's
packages (about 3.5 min cold on this machine, the base made with mmdebstrap
included), and each gate on docker runs four containers. It holds that the
corrected plan is SAFE and the plan as written NOT SAFE on each, with the same
checks failing on 17 as on 15 except those :data:`DIFFER` explains, and prints the
gate's time for each. Run with ``pytest benchmarks/test_gate_versions.py -s``
(``harness image build --pg-version 17`` first, or the first gate builds it).
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
    "15-local": ["--provider", "local"],
    "15-docker": ["--provider", "docker", "--pg-version", "15"],
    "17-docker": ["--provider", "docker", "--pg-version", "17"],
}
# PgBouncer 1.24 (trixie, with PostgreSQL 17) keeps protocol-level prepared statements
# in transaction pooling (max_prepared_statements = 200 by default): the as-written
# plan's preparing Prisma clients work behind its writer, and do not behind 1.18's.
DIFFER = {"sessions.prepared_statements"}


def _gate(plan: str, target: str, reports: Path) -> tuple[int, float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(ROOT / "plans" / plan),
         "--no-traffic", "--reports", str(reports), *TARGETS[target]],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=1200,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, seconds, json.loads((reports / "gate.json").read_text())


@pytest.mark.docker
@pytest.mark.slow
def test_the_gate_gives_the_same_verdicts_on_15_and_17(tmp_path: Path) -> None:
    failed: dict[tuple[str, str], set[str]] = {}
    for target in TARGETS:
        for plan, expected in (("kct", 0), ("as-written", 1)):
            code, seconds, doc = _gate(plan, target, tmp_path / f"{plan}-{target}")
            print(f"{target:10} {plan:11} exit {code} {seconds:6.1f} sec wall, "
                  f"{doc['seconds']} sec gate; PostgreSQL {doc.get('postgresql')}, "
                  f"PgBouncer {doc.get('pgbouncer')}")  # fmt: skip
            assert code == expected, doc["failed"]
            names = doc["failed"]
            assert isinstance(names, list)
            failed[(plan, target)] = {str(n) for n in names}
    for target in TARGETS:
        assert (
            failed[("as-written", target)] - DIFFER == failed[("as-written", "15-local")] - DIFFER
        )
    assert "sessions.prepared_statements" in failed[("as-written", "15-local")]
    assert "sessions.prepared_statements" not in failed[("as-written", "17-docker")]
