"""What the reports add to ``harness gate`` (target ≤ 0.5 s), measured side by side.

Each measurement runs in a fresh interpreter, since the cost that matters is a
first plot's: importing matplotlib. Three cases: a report of checks only (no
plot); with a traffic timeline, plotting library imported cold after the gate;
and as ``harness gate`` does it, imported while the gate ran (``warm_up``).
Run with ``pytest benchmarks/test_report_speed.py --benchmark-enable -s``;
nothing asserts a timing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROUNDS = 3
_SCRIPT = """
import json, sys, time
from pathlib import Path
from harness.report import write_reports
from harness.report.plots import warm_up
doc, warm = json.loads(sys.argv[1]), sys.argv[2] == "warm"
if warm:
    warm_up().join()
files = write_reports(doc, directory=Path(sys.argv[3]))
print(files.seconds, files.html_bytes)
"""


def _document(*, traffic: bool) -> dict[str, object]:
    checks = [
        {"name": f"group{i}.check", "verdict": "fail" if i % 3 == 0 else "pass",
         "reason": "what held or did not", "details": [f"offender {j}" for j in range(i)]}
        for i in range(18)
    ]  # fmt: skip
    doc: dict[str, object] = {
        "plan": "bench",
        "verdict": "unsafe",
        "failed": [c["name"] for c in checks if c["verdict"] == "fail"],
        "seconds": 5.0,
        "checks": checks,
    }
    if traffic:
        doc["traffic"] = {
            "steps": [
                {"step": f"up/00{n}_step.sql", "phase": "migrate", "started_s": n * 0.4,
                 "seconds": 0.4, "requests": 300, "errors": 0, "p50_ms": 1.0 + n,
                 "p99_ms": 4.0 + n, "max_ms": 9.0 + n}
                for n in range(1, 7)
            ]
        }  # fmt: skip
    return doc


def _run(doc: dict[str, object], *, warm: bool, directory: Path) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(doc), "warm" if warm else "cold", directory],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seconds, size = done.stdout.split()
    return float(seconds), int(size)


@pytest.mark.benchmark
def test_time_the_reports_add(tmp_path: Path) -> None:
    cases = {
        "checks only": (_document(traffic=False), False),
        "with traffic timeline, matplotlib cold": (_document(traffic=True), False),
        "with traffic timeline, as harness gate (warmed)": (_document(traffic=True), True),
    }
    print("\n== reports written after the gate (target: ≤ 0.5 s)")
    for label, (doc, warm) in cases.items():
        runs = [_run(doc, warm=warm, directory=tmp_path / f"r{i}") for i in range(ROUNDS)]
        median = statistics.median(s for s, _ in runs)
        print(f"   {label:<50} {median * 1000:8.1f} ms   index.html {runs[0][1]:,} bytes")
        assert all(size > 0 for _, size in runs)
