"""How each driver holds its connections, counted on a real server.

The comparison's verdict rests on what each side's instances ask of the servers: a
pooled instance keeps its connections for its life; a driver without a pool opens
one per request, and pays a whole set-up (here TLS and SCRAM) each time.
"""

from __future__ import annotations

from pathlib import Path

from hosted import hosted_cluster  # noqa: F401  (the fixture "hosted")

from harness.cluster.local import LocalCluster
from harness.load.config import load_config
from harness.load.handshake import open_ms, server_sessions
from harness.load.instance import DirectInstance, PerRequestInstance
from harness.load.pgbench import find_pgbench, run_pgbench
from harness.load.pinning import available_cores
from harness.load.workload import Operation, Workload

READ = Operation(name="one", kind="read", weight=1, statements=("SELECT 1",))


def test_a_driver_without_a_pool_opens_a_server_connection_per_request(
    hosted: LocalCluster,
) -> None:
    primary = hosted.endpoints.primary
    before = server_sessions([primary])
    instance = PerRequestInstance(primary, None, connect_timeout=5)
    for _ in range(5):
        instance.run(READ, {})
    after = server_sessions([primary])
    assert before is not None
    assert after is not None
    # five requests, five connections (and the counting's own one)
    assert after - before == 5 + 1


def test_a_pooled_instance_keeps_one_for_all_its_requests(hosted: LocalCluster) -> None:
    primary = hosted.endpoints.primary
    before = server_sessions([primary])
    instance = DirectInstance(
        primary, settings=load_config().baseline, application_name="pgcutover_load_test"
    )
    for _ in range(5):
        instance.run(READ, {})
    instance.close()
    after = server_sessions([primary])
    assert before is not None
    assert after is not None
    assert after - before == 1 + 1


def test_opening_a_connection_is_measured_on_every_path(hosted: LocalCluster) -> None:
    e = hosted.endpoints
    times = [open_ms(url, samples=3) for url in (e.primary, e.writer, e.reader)]
    assert all(ms is not None and ms > 0 for ms in times), times
    # a path that refuses connections has no time rather than a made-up one
    assert hosted.primary is not None
    refused = e.primary.replace(f":{hosted.primary.port}/", ":1/")
    assert refused != e.primary
    assert open_ms(refused, samples=1) is None


def test_pgbench_runs_the_workload_on_the_cores_it_is_given(
    hosted: LocalCluster, tmp_path: Path
) -> None:
    """The cross-check's pgbench, pinned as Locust is, through the same TLS and SCRAM."""
    cores = tuple(sorted(available_cores()))[-1:]
    result = run_pgbench(
        pgbench=find_pgbench(),
        url=hosted.endpoints.primary,
        architecture="baseline",
        workload=Workload(name="one", operations=(READ,)),
        samples={READ.name: [{}]},
        clients=2,
        jobs=1,
        duration=2,
        workdir=tmp_path,
        cores=cores,
    )
    assert result.exit_code == 0, (tmp_path / "baseline.out").read_text()
    assert result.transactions > 0
    assert result.error_rate == 0
    assert result.p95_ms is not None
    assert result.p95_ms > 0
    # -C: every transaction paid a connection, TLS and SCRAM included
    assert result.connection_ms is not None
    assert result.connection_ms > 0
