"""``[pgbouncer]`` in plan.toml: read, checked, and rendered the same by every provider."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from harness.cluster.docker_plan import plan_docker_cluster
from harness.cluster.pooling import (
    DEFAULT_POOLERS,
    DIRECT_CONNECTIONS,
    READER,
    WRITER,
    Poolers,
    PoolSettings,
    auth_file_text,
    max_connections_for,
    render_ini,
)
from harness.errors import PlanError
from harness.plan import load_plan
from harness.plan.pgbouncer import MAX_SERVER_CONNECTIONS

PLANS = Path(__file__).resolve().parent.parent / "plans"


def _plan(tmp_path: Path, section: str) -> Path:
    directory = tmp_path / "plan"
    for folder in ("up", "down"):
        (directory / folder).mkdir(parents=True)
        (directory / folder / "001_s.sql").write_text("SELECT 1;\n")
    (directory / "plan.toml").write_text('name = "p"\n' + textwrap.dedent(section))
    return directory


def _ini(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith(";")}


def test_the_plan_as_written_writes_out_the_defaults() -> None:
    plan = load_plan(PLANS / "as-written")
    assert plan.pgbouncer == DEFAULT_POOLERS
    # the corrected plan pools differently (harness load tune found it): not the seed's
    assert load_plan(PLANS / "kct").pgbouncer != DEFAULT_POOLERS
    assert (WRITER.pool_mode, WRITER.max_client_conn, READER.default_pool_size) == (
        "transaction",
        100,
        50,
    )


def test_a_plan_without_the_section_keeps_the_defaults(tmp_path: Path) -> None:
    assert load_plan(_plan(tmp_path, "")).pgbouncer is None


def test_each_key_left_out_keeps_its_default(tmp_path: Path) -> None:
    plan = load_plan(
        _plan(
            tmp_path,
            """
            [pgbouncer.reader]
            pool_mode = "transaction"
            default_pool_size = 7
            server_login_retry = 0
            """,
        )
    )
    assert plan.pgbouncer is not None
    assert plan.pgbouncer.writer == WRITER
    reader = plan.pgbouncer.reader
    assert (reader.role, reader.pool_mode, reader.default_pool_size) == ("reader", "transaction", 7)
    assert (reader.max_client_conn, reader.server_lifetime, reader.server_login_retry) == (
        READER.max_client_conn,
        READER.server_lifetime,
        0,
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("pgbouncer = 3\n", r"\[pgbouncer\] must be a table"),
        ("[pgbouncer.primary]\npool_mode = 'session'\n", r"unknown pooler\(s\) primary"),
        ("[pgbouncer]\nwriter = 'transaction'\n", r"\[pgbouncer.writer\] must be a table"),
        ("[pgbouncer.writer]\npoolmode = 'session'\n", r"unknown key\(s\) poolmode.*pool_mode"),
        ("[pgbouncer.writer]\npool_mode = 'Session'\n", r"pool_mode = 'Session'.*statement"),
        ("[pgbouncer.reader]\nmax_client_conn = 0\n", r"max_client_conn = 0.*at least 1"),
        ("[pgbouncer.reader]\ndefault_pool_size = 2.5\n", r"whole number of at least 1"),
        ("[pgbouncer.reader]\nreserve_pool_size = true\n", r"reserve_pool_size = True"),
        ("[pgbouncer.writer]\nserver_lifetime = '1h'\n", r"whole number \(seconds\)"),
        ("[pgbouncer.writer]\nserver_idle_timeout = -1\n", r"at least 0"),
    ],
)
def test_a_malformed_section_is_refused_naming_the_key(
    tmp_path: Path, section: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message) as caught:
        load_plan(_plan(tmp_path, section))
    assert str(tmp_path / "plan" / "plan.toml") in str(caught.value)


def test_pools_the_servers_cannot_hold_are_refused(tmp_path: Path) -> None:
    section = """
        [pgbouncer.reader]
        max_client_conn = 10000
        default_pool_size = 1000
        """
    with pytest.raises(PlanError, match=rf"up to \d+ server connections.*{MAX_SERVER_CONNECTIONS}"):
        load_plan(_plan(tmp_path, section))


def _settings(**changes: int | str) -> PoolSettings:
    values: dict[str, int | str] = {
        "role": "writer",
        "pool_mode": "transaction",
        "max_client_conn": 100,
        "default_pool_size": 25,
        "reserve_pool_size": 5,
        "reserve_pool_timeout": 5,
        "server_lifetime": 3600,
        "server_idle_timeout": 600,
        **changes,
    }
    return PoolSettings(**values)  # type: ignore[arg-type]


def test_max_connections_follows_the_busier_pooler() -> None:
    # The defaults: the reader admits 200 clients, fewer than 4 pools of 60 hold.
    assert max_connections_for(DEFAULT_POOLERS) == 200 + DIRECT_CONNECTIONS == 300
    # Small pools bound it below max_client_conn: 4 pools of 3 + 1.
    small = Poolers(
        writer=_settings(default_pool_size=3, reserve_pool_size=1),
        reader=_settings(role="reader", max_client_conn=10, default_pool_size=2),
    )
    assert small.writer.server_connections == 16
    assert small.reader.server_connections == 10
    assert max_connections_for(small) == 16 + DIRECT_CONNECTIONS
    # Either pooler can be the busier one: the replica must allow at least the primary's.
    swapped = Poolers(writer=small.reader, reader=small.writer)
    assert max_connections_for(swapped) == max_connections_for(small)


def test_docker_renders_the_plans_poolers_with_the_local_renderer() -> None:
    poolers = Poolers(
        writer=_settings(pool_mode="session", max_client_conn=7, default_pool_size=2),
        reader=_settings(role="reader", pool_mode="statement", server_idle_timeout=11),
    )
    plan = plan_docker_cluster(dbname="shop", token="p00ls", poolers=poolers)
    for settings in poolers.both:
        spec = plan.spec(settings.role)
        server = plan.spec("primary" if settings.role == "writer" else "replica")
        expected = render_ini(
            settings,
            listen_port=spec.port,
            server_port=server.port,
            dbname="shop",
            auth_file="/tmp/pgbouncer/userlist.txt",
        )
        assert expected.rstrip("\n") in spec.script
    assert _ini(plan.spec("writer").script)["pool_mode"] == "session"
    assert _ini(plan.spec("reader").script)["server_idle_timeout"] == "11"
    wanted = f"max_connections={poolers.max_connections}"
    for role in ("primary", "replica"):
        assert wanted in plan.spec(role).script
    default = plan_docker_cluster(dbname="shop", token="d3fault")
    assert "max_connections=300" in default.spec("replica").script


def test_auth_file_quotes_each_user_once() -> None:
    assert auth_file_text(["postgres", 'we"ird', "postgres"]) == '"postgres" ""\n"we""ird" ""\n'


def test_statement_pooling_under_a_workload_of_transactions_is_refused(tmp_path: Path) -> None:
    """The retailer's own order placement is a transaction of several statements: behind
    a writer in statement mode it can never run, so the plan is refused as it is read."""
    plan = tmp_path / "kct"
    shutil.copytree(PLANS / "kct", plan)
    toml = (plan / "plan.toml").read_text()
    writer = toml.index("[pgbouncer.writer]")
    mode = toml.index('pool_mode = "transaction"', writer)
    text = toml[:mode] + 'pool_mode = "statement"' + toml[mode + len('pool_mode = "transaction"') :]
    (plan / "plan.toml").write_text(text)
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    message = str(caught.value)
    assert '[pgbouncer.writer] pool_mode = "statement" refuses transaction blocks' in message
    assert "place_order" in message
    assert 'use pool_mode = "transaction"' in message
