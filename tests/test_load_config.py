"""The comparison's config: every number from one file, nothing unknown accepted."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.cluster.pgbouncer import READER, WRITER
from harness.errors import UsageError
from harness.load.capacity import capped_by, describe_pooling, limits
from harness.load.config import DEFAULT_CONFIG, load_config
from harness.load.planned import with_plan
from harness.load.workload import workload_for
from harness.plan import load_plan

PLAN = Path(__file__).resolve().parents[1] / "plans" / "kct"
AS_WRITTEN = PLAN.parent / "as-written"
TRANSACTION_READER = """
[pgbouncer.reader]
pool_mode = "transaction"
max_client_conn = 3000

[application]
pool_timeout = 2.0
connect_timeout = 2.0
[application.writer]
min_size = 1
max_size = 2
max_idle = 30.0
[application.reader]
min_size = 1
max_size = 2
max_idle = 60.0
"""


def _plan_copy(tmp_path: Path, *, pooling: str) -> Path:
    """plans/as-written with other pooling: its [pgbouncer] sections replaced by ``pooling``."""
    plan = tmp_path / "plan"
    shutil.copytree(AS_WRITTEN, plan)
    text = (plan / "plan.toml").read_text()
    text = text[: text.index("[pgbouncer.writer]")] + pooling
    (plan / "plan.toml").write_text(text)
    return plan


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "load.toml"
    path.write_text(text)
    return path


def test_every_number_in_the_shipped_file_has_a_reason() -> None:
    lines = [
        line
        for line in DEFAULT_CONFIG.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("[")
    ]
    # the PgBouncer numbers share the comment above them
    keys = [(line, line.split("=")[0].strip().strip('"')) for line in lines if "#" not in line]
    unexplained = [line for line, key in keys if not key.startswith(("writer_", "reader_"))]
    assert not unexplained, unexplained
    config = load_config()
    assert config.run.users == 150
    assert config.baseline.max_connections == 100
    # no mix of its own: the plan's [workload] weights, the same the gate's traffic runs
    assert config.mix == {}
    workload = workload_for(PLAN)
    assert workload.weighted(config.mix) == workload


def test_the_shipped_numbers_are_the_seed_plans() -> None:
    """plans/as-written keeps the seed's pooling: the shipped [target] is exactly it."""
    config = load_config()
    assert with_plan(config, load_plan(AS_WRITTEN)) == config
    assert (config.target.writer_max_client_conn, config.target.reader_pool_mode) == (
        WRITER.max_client_conn,
        READER.pool_mode,
    )


def test_the_plans_pooling_replaces_the_configs(tmp_path: Path) -> None:
    plan = _plan_copy(tmp_path, pooling=TRANSACTION_READER)
    config = with_plan(load_config(), load_plan(plan))
    assert config.target.reader_pool_mode == "transaction"
    assert config.target.reader_max_client_conn == 3000
    assert (config.target.reader_min_size, config.target.reader_max_size) == (1, 2)
    # a transaction-mode reader holds no server connection per instance: no session limit
    assert not [x for x in limits(config) if "session pooling" in x.setting]
    said = " ".join(describe_pooling(config))
    assert "reader: transaction pooling" in said
    assert "session" not in said


def test_a_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[run]\nusers = 7\n[baseline]\nmax_connections = 20\n"))
    assert (config.run.users, config.baseline.max_connections) == (7, 20)
    assert config.run.duration == load_config().run.duration


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[run]\nuser = 3\n", "unknown key user in [run]"),
        ("[runs]\nusers = 3\n", "unknown section [runs]"),
        ("[run]\nusers = 0\n", "users must be at least 1"),
        ("[run]\nduration = 5000\n", "max_duration"),
        ("[run]\nusers = 5000\n", "over the cap"),
        ("[run]\nusers = 'many'\n", "[run] users must be int"),
        ("[baseline]\npool_timeout = true\n", "[baseline] pool_timeout must be float"),
        ("[targets]\np95_reduction = 30\n", "fraction"),
        ("[instance]\nthink_time_min = 2.0\nthink_time_max = 1.0\n", "think_time_min"),
        ("[run\n", "not valid TOML"),
        ("[network]\ntls = 'yes'\n", "[network] tls must be true or false"),
        ("[network]\nssl = true\n", "unknown key ssl in [network]"),
        ("[instance]\ndriver = 'pgx'\n", "driver = 'pgx'; the drivers are pool, per_request"),
        ("[instance]\nsuspended_share = 1.5\n", "suspended_share is a fraction"),
        ("[instance]\ncold_start_share = -0.1\n", "cold_start_share is a fraction"),
        ("[instance]\nsuspended_for = 45.0\n", "under the target pools' shortest max_idle (30 s)"),
    ],
)
def test_bad_config_is_refused_naming_the_problem(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(UsageError, match=r"load\.toml") as caught:
        load_config(_write(tmp_path, text))
    assert named in str(caught.value)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_command_line_values_are_checked_against_the_caps() -> None:
    config = load_config()
    assert config.with_run(users=3, duration=2).run.users == 3
    with pytest.raises(UsageError, match="max_duration"):
        config.with_run(duration=config.run.max_duration + 1)


def test_a_mix_naming_an_unknown_operation_is_refused() -> None:
    with pytest.raises(UsageError, match="'checkout'"):
        workload_for(PLAN).weighted({"checkout": 1})


def test_changed_pgbouncer_numbers_are_refused_for_the_local_cluster(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[target]\nwriter_max_client_conn = 1000\n"))
    with pytest.raises(UsageError, match="writer_max_client_conn = 1000"):
        with_plan(config, load_plan(AS_WRITTEN))


def test_capacity_names_the_setting_that_caps_the_target() -> None:
    config = load_config()
    by_setting = {x.setting: x for x in limits(config)}
    assert by_setting["max_connections"].instances == 100
    # dbConfig.writer min 2: the router's checks of the writer borrow them, 2 per instance
    assert by_setting["writer max_client_conn"].instances == 100 // 2
    # dbConfig.reader min 5: the replica monitor's probes borrow an idle one, 5 per instance
    assert by_setting["reader max_client_conn"].instances == 200 // 5
    # a reader pool that keeps none: the monitor's own connection, 1 per instance
    lazy = dataclasses.replace(config, target=dataclasses.replace(config.target, reader_min_size=0))
    assert {x.setting: x for x in limits(lazy)}["reader max_client_conn"].instances == 200
    assert capped_by(config, users=5) == []
    capping = {x.setting for x in capped_by(config, users=150)}
    assert "writer max_client_conn" in capping


def test_a_plan_whose_workload_is_broken_stops_the_comparison_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    plan = tmp_path / "plan"
    shutil.copytree(PLAN, plan)
    toml = plan / "plan.toml"
    query = 'name = "segment_report"\nrole = "kct_readonly"'
    assert query in toml.read_text()
    toml.write_text(toml.read_text().replace(query, query.replace("kct_readonly", "nobody")))
    with pytest.raises(UsageError, match="role 'nobody' is not one of the plan's roles"):
        workload_for(plan)
    code = main(["load", "compare", "--plan", str(plan), "--reports", str(tmp_path / "r")])
    assert code == 2
    assert "role 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "load" / "round1").exists()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--sweep-also", "plans/as-written"], "--sweep-also draws beside a sweep: add --sweep"),
        (["--sweep", "--sweep-also", "plans/nowhere"], "plans/nowhere"),
    ],
)
def test_another_plans_sweep_is_refused_before_any_load(
    extra: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["load", "compare", *extra, "--reports", str(tmp_path / "r")])
    assert code == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "r" / "load").exists()
