"""``harness up`` through an operator's day: a node stopped and started, the primary
restarted, PgBouncer killed, then SIGTERM.

The operator uses plain ``pg_ctl``: the nodes come back on their ports with
their settings. ``harness up`` reports the node that went down and came back,
restarts the dead PgBouncer and says so, and on SIGTERM leaves no process and
no directory behind, although the restarted primary has a pid it never saw.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.cluster.binaries import find_binaries
from harness.cluster.local import default_base_dir
from harness.cluster.processes import processes_under, run_as_owner

HARNESS = [sys.executable, "-m", "harness.cli"]
WAIT = 60.0


@pytest.fixture
def base_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own directory for the cluster, so what is left behind is its own."""
    base = Path(tempfile.mkdtemp(prefix="faults-up-", dir=default_base_dir()))
    base.chmod(0o755)
    monkeypatch.setenv("PGCUTOVER_TMPDIR", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


class Lines:
    """The lines a child writes to one of its pipes, as they come."""

    def __init__(self, stream: object) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        thread.start()

    def _pump(self, stream: object) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, needle: str, *, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line with {needle!r}; got {self.seen}"
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if needle in line:
                return line


def _pg_ctl(datadir: Path, action: str) -> None:
    run_as_owner(
        [find_binaries().path("pg_ctl"), "-D", str(datadir), "-l", f"{datadir}.log",
         "-m", "fast", "-w", "-t", "60", action],
        what=f"pg_ctl {action}",
    )  # fmt: skip


def _accepts(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True, prepare_threshold=None):
            return True
    except psycopg.OperationalError:
        return False


def test_up_reports_nodes_restarts_pgbouncer_and_leaves_nothing_on_sigterm(
    base_dir: Path,
) -> None:
    with subprocess.Popen(
        [*HARNESS, "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            env = dict(out.wait_for(key).split("=", 1) for key in ("PRIMARY_URL", "DATABASE_URL"))
            err.wait_for("up; stop with Ctrl-C or SIGTERM")
            (workdir,) = [p for p in base_dir.glob("pgcutover-*") if "initdb" not in p.name]

            _pg_ctl(workdir / "replica", "stop")
            err.wait_for("PostgreSQL replica on 127.0.0.1:")
            assert "is down; start it again with pg_ctl" in err.seen[-1]
            _pg_ctl(workdir / "replica", "start")
            err.wait_for("PostgreSQL replica on 127.0.0.1:")
            assert err.seen[-1].endswith("is running again")

            _pg_ctl(workdir / "primary", "restart")
            assert _accepts(env["PRIMARY_URL"]), "the restarted primary left its port"

            pid = int((workdir / "pgbouncer-writer" / "pgbouncer.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            line = err.wait_for("PgBouncer (writer)")
            reported = time.monotonic() - killed
            assert "died (exit code -9); restarted it in" in line
            assert _accepts(env["DATABASE_URL"])
            print(f"\nharness up reported and restarted a killed PgBouncer in {reported:.2f} sec")
            assert reported < 10.0

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not workdir.exists(), "the cluster's directory was left behind"
    assert processes_under(base_dir) == {}, "a server process was left running"
    assert not _accepts(env["PRIMARY_URL"])
