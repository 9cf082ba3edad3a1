"""index.html as a browser shows it: the verdict and every check, offline.

The report is the gate's real one for the plan as written (eight defects, long
offender lists) with a traffic run and a load comparison added in the shape
their sections document, so the page carries everything it can. Headless
Chromium (Debian's ``chromium`` package) renders it with networking off; the
DOM it built must hold the verdict and every check, the picture must show the
red verdict, and the screenshot is kept as ``reports/index.png``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from planting import run_gate

from harness.cluster import Cluster
from harness.report import write_reports
from harness.testing.fix_cluster import missing_capability
from harness.testing.fix_legacy import LegacyDatabase

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "reports" / "index.png"
UNSAFE_RED = (0xB0, 0x3A, 0x48)

TRAFFIC = {
    "clients": 4,
    "baseline": {"p50_ms": 0.7, "p99_ms": 2.4, "max_ms": 5.1},
    "steps": [
        {"step": f"up/00{n}_{name}.sql", "phase": "migrate", "started_s": 0.3 * n,
         "seconds": 0.3, "requests": 120, "errors": errors, "p50_ms": 0.8 * n,
         "p99_ms": 3.0 * n, "max_ms": 9.0 * n}
        for n, name, errors in ((1, "create_schemas", 0), (2, "grant_permissions", 0),
                                (3, "move_tables", 37), (4, "search_path", 37))
    ],
}  # fmt: skip
LOAD = {
    "title": "reads on the replica vs. all on the writer",
    "runs": [
        {"name": "split", "requests": 6000, "failures": 0, "rps": 200.0, "p50_ms": 3.0,
         "p95_ms": 9.0, "p99_ms": 15.0,
         "timeline": [{"t_s": t, "rps": 190.0 + t, "p95_ms": 9.0} for t in range(0, 30, 5)]},
        {"name": "writer-only", "requests": 4800, "failures": 0, "rps": 160.0, "p50_ms": 5.0,
         "p95_ms": 18.0, "p99_ms": 30.0,
         "timeline": [{"t_s": t, "rps": 150.0 + t, "p95_ms": 18.0} for t in range(0, 30, 5)]},
    ],
}  # fmt: skip


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing_capability("chromium is not installed (Debian: apt-get install chromium)")
        raise AssertionError("unreachable")
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root, Chromium refuses to start with its sandbox
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_index_html_renders_in_a_browser(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    chromium = _chromium()
    report = run_gate(ROOT / "plans" / "as-written", cluster, legacy_database.endpoints, tmp_path)
    files = write_reports(
        {**report.to_json(), "traffic": TRAFFIC, "load": LOAD}, directory=tmp_path / "reports"
    )
    url = files.index_html.as_uri()

    dom = _headless(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="verdict" data-verdict="unsafe">NOT SAFE</div>' in dom.stdout
    for check in report.checks:
        assert f'data-check="{check.name}" data-verdict="{check.verdict}"' in dom.stdout, check
    assert dom.stdout.count("<svg") == 3  # the traffic timeline and two load plots

    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = _headless(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={SCREENSHOT}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        url,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    from matplotlib.image import imread

    pixels = np.asarray(imread(SCREENSHOT))[:, :, :3]
    top = (pixels[:300] * 255).round().astype(int)
    red = np.all(np.abs(top - np.array(UNSAFE_RED)) <= 3, axis=-1)
    assert red.sum() > 500, "the red NOT SAFE verdict is not in the top of the page"
