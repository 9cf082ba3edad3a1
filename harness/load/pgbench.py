"""The same comparison with pgbench: a second opinion from a tool with no Python in the loop.

pgbench runs the plan's workload queries as weighted scripts with ``-C`` (a new
connection per transaction, the most connection-hungry client there is) and the
same client count, once straight to the baseline's primary and once through the
target's PgBouncer writer. Its numbers differ in kind from Locust's — a client
whose connection is refused aborts instead of retrying — so the cross-check
compares *reductions*, which should agree in direction and roughly in size.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.dsn import child_env
from harness.errors import InfrastructureError
from harness.load.pinning import pin_tree
from harness.load.results import percentile
from harness.load.workload import Workload

__all__ = ["PgbenchResult", "find_pgbench", "run_pgbench"]


@dataclass(frozen=True, kw_only=True)
class PgbenchResult:
    architecture: str
    clients: int
    transactions: int
    failed_transactions: int
    aborted_clients: int
    tps: float
    latency_avg_ms: float | None
    p95_ms: float | None
    connection_ms: float | None
    exit_code: int

    @property
    def error_rate(self) -> float:
        """Share of clients lost: with -C a refused connection aborts its client for good.

        Per client, not per transaction: the side that lost no more clients but ran
        more transactions would otherwise look better for its speed, not its errors.
        """
        return self.aborted_clients / self.clients if self.clients else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}


def find_pgbench(pg_bin: str | None = None) -> str:
    from harness.cluster.binaries import find_binaries

    path = Path(find_binaries(pg_bin).path("pgbench"))
    if not path.is_file():
        raise InfrastructureError(
            f"pgbench not found at {path}: it ships with the PostgreSQL server packages "
            "(Debian: postgresql-15 or postgresql-contrib); install them or pass --pg-bin"
        )
    return str(path)


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def _p95_from_logs(prefix: Path) -> float | None:
    """The 95th percentile of per-transaction latency, from pgbench's ``-l`` logs (µs)."""
    latencies: list[float] = []
    # pgbench names its logs PREFIX.PID (and .THREAD): digits only, so the saved summary
    # (PREFIX.out) beside them is neither read as a log nor removed.
    for path in prefix.parent.glob(prefix.name + ".[0-9]*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(float(fields[2]))
        path.unlink()
    p95 = percentile(sorted(latencies), 0.95)  # the same rank as Locust's side
    return None if p95 is None else p95 / 1000


def run_pgbench(
    *,
    pgbench: str,
    url: str,
    architecture: str,
    workload: Workload,
    samples: Mapping[str, Sequence[Mapping[str, object]]],
    clients: int,
    jobs: int,
    duration: int,
    workdir: Path,
    reconnect: bool = True,
    cores: tuple[int, ...] | None = None,
) -> PgbenchResult:
    """One bounded pgbench run of the workload's weighted scripts against ``url``.

    ``reconnect`` is ``-C``; without it every client keeps one connection, as the
    efficiency benchmark needs to compare with Locust instances that keep theirs.
    ``-M extended`` is psycopg's protocol (unnamed statements, parameters bound by
    the server), so both tools ask the server for the same work; PgBouncer in
    transaction pooling takes it, as it cannot take ``-M prepared``. ``cores``: pgbench
    runs on these, as Locust does (the servers pinned apart by the caller).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [pgbench, "-n", *(["-C"] if reconnect else []), "-M", "extended"]
    argv += ["-c", str(clients), "-j", str(min(jobs, clients))]
    argv += ["-T", str(duration), "-l", f"--log-prefix={workdir / architecture}"]
    for op in workload.live:
        script = workdir / f"{architecture}-{op.name}.sql"
        script.write_text(op.pgbench_script(rows=samples[op.name]))
        argv += ["-f", f"{script}@{op.weight}"]
    conninfo, env = child_env(url)  # a password goes in the environment, not on argv
    proc = subprocess.Popen(
        [*argv, conninfo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        if cores is not None:
            pin_tree(proc.pid, cores)  # every thread it has; those it makes later inherit it
        out, err = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise InfrastructureError(
            f"pgbench against the {architecture} did not end 60 s after its {duration} s"
        ) from None
    text = out + err
    (workdir / f"{architecture}.out").write_text(text)
    processed = _number(r"number of transactions actually processed: (\d+)", text)
    if processed is None:
        raise InfrastructureError(
            f"pgbench against the {architecture} printed no summary (exit code "
            f"{proc.returncode}): {text.strip()[-1500:]}"
        )
    aborted = len(set(re.findall(r"client (\d+) aborted", text)))
    return PgbenchResult(
        architecture=architecture,
        clients=clients,
        transactions=int(processed),
        failed_transactions=int(_number(r"number of failed transactions: (\d+)", text) or 0),
        aborted_clients=aborted,
        tps=_number(r"tps = ([\d.]+)", text) or 0.0,
        latency_avg_ms=_number(r"latency average = ([\d.]+) ms", text),
        p95_ms=_p95_from_logs(workdir / architecture),
        connection_ms=_number(r"average connection time = ([\d.]+) ms", text),
        exit_code=proc.returncode,
    )
