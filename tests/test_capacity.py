"""Room for the built-in database, checked before any server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.legacy.capacity import (
    MAX_SCALE,
    check_clone_room,
    check_room,
    clone_room_needed,
    room_needed,
)

ROOT = Path(__file__).resolve().parent.parent


def _free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_a_scale_the_disk_cannot_hold_is_refused_naming_the_space_and_the_fix(
    tmp_path: Path,
) -> None:
    free = _free(tmp_path)
    scale = next(s for s in range(1, MAX_SCALE + 1, 10) if room_needed(scale=s) > free)
    with pytest.raises(UsageError, match=r"needs about [\d.]+ GB in .* free; set PGCUTOVER_TMPDIR"):
        check_room(scale=scale, directory=tmp_path)
    check_room(scale=1, directory=tmp_path)


def test_a_scale_above_the_cap_is_refused_whatever_the_room(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="above the largest"):
        check_room(scale=MAX_SCALE + 1, directory=tmp_path)


def test_more_scale_needs_more_room() -> None:
    sizes = [room_needed(scale=s) for s in (1, 10, 100, 1000)]
    assert sizes == sorted(sizes)
    # Scale 100 is 827 MB of database: three copies of it at least.
    assert room_needed(scale=100) > 3 * 827_000_000
    # The gate's peaks measured at scales 100 and 1000 (every file under its directories;
    # at 1000, the disk's own use), with its backup an uncompressed directory archive.
    assert room_needed(scale=100) > 8_000_000_000
    assert room_needed(scale=1000) > 59_500_000_000


def test_the_gate_exits_2_before_starting_anything(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gate", "--plan", str(ROOT / "plans" / "kct"),
         "--scale", str(MAX_SCALE + 1), "--reports", str(tmp_path / "reports")],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PGCUTOVER_TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "above the largest" in done.stderr
    # Nothing was started, so nothing was written: no cluster directory, no report.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_clone_needs_the_whole_source_twice_and_its_database_once_more() -> None:
    # A clone of a 10 GB server whose gated database is 4 GB: the copy and its replica
    # hold all 10 GB, the backup's restore 4 GB more.
    needed = clone_room_needed(cluster_bytes=10 * 10**9, database_bytes=4 * 10**9)
    assert needed > 2 * 10 * 10**9 + 4 * 10**9
    # A clone of the built-in database at scale 100 (830 MB, the whole cluster) needs what
    # the gate of the built-in database at that scale needs: one sum for both.
    built_in = 8_300_000 * 100
    assert clone_room_needed(cluster_bytes=built_in, database_bytes=built_in) == room_needed(
        scale=100
    )


def test_a_clone_the_disk_cannot_hold_is_refused_naming_the_space_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCUTOVER_TMPDIR", str(tmp_path))
    free = _free(tmp_path)
    with pytest.raises(UsageError, match=r"needs about [\d.]+ GB in .* free; set PGCUTOVER_TMPDIR"):
        check_clone_room(source="staging", cluster_bytes=free, database_bytes=free)
    check_clone_room(source="staging", cluster_bytes=10**6, database_bytes=10**6)
