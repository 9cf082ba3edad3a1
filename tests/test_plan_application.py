"""``[application]`` in plan.toml, and what ``harness load tune`` prunes before measuring."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import PlanError
from harness.load.capacity import capped_by
from harness.load.config import load_config
from harness.load.planned import with_plan
from harness.load.tune import Candidate, candidates, run_cost, snippet
from harness.plan import load_plan

PLANS = Path(__file__).resolve().parent.parent / "plans"
POOLS = """
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


def _plan(tmp_path: Path, section: str) -> Path:
    directory = tmp_path / "plan"
    for folder in ("up", "down"):
        (directory / folder).mkdir(parents=True)
        (directory / folder / "001_s.sql").write_text("SELECT 1;\n")
    (directory / "plan.toml").write_text('name = "p"\n' + textwrap.dedent(section))
    return directory


def test_both_plans_declare_their_application_pools() -> None:
    seed = load_plan(PLANS / "as-written").application
    assert seed is not None
    # the plan as written keeps its dbConfig: writer 2..10, reader 5..20
    assert (seed.writer.min_size, seed.writer.max_size) == (2, 10)
    assert (seed.reader.min_size, seed.reader.max_size) == (5, 20)
    kct = load_plan(PLANS / "kct")
    assert kct.application is not None
    assert kct.pgbouncer is not None
    # the corrected plan's own numbers admit the config's load: nothing caps its target
    config = with_plan(load_config(), kct)
    assert capped_by(config, users=config.run.users) == []


@pytest.mark.parametrize(
    ("section", "named"),
    [
        (POOLS.replace("max_idle = 30.0", "max_idel = 30.0"), "unknown key(s) max_idel"),
        (POOLS.replace("pool_timeout", "pool_timeot"), "unknown key(s) pool_timeot"),
        (
            POOLS.replace(
                "min_size = 1\nmax_size = 2\nmax_idle = 30",
                "min_size = 3\nmax_size = 2\nmax_idle = 30",
            ),
            "min_size 3 is above max_size 2",
        ),
        (POOLS.replace("connect_timeout = 2.0\n", ""), "missing connect_timeout"),
        (
            "[pgbouncer.writer]\nmax_client_conn = 5\n"
            + POOLS.replace("max_size = 2\nmax_idle = 30", "max_size = 8\nmax_idle = 30"),
            "max_size 8 is above [pgbouncer.writer] max_client_conn 5",
        ),
    ],
)
def test_bad_application_pools_are_refused_naming_the_key(
    tmp_path: Path, section: str, named: str
) -> None:
    with pytest.raises(PlanError, match=re.escape(named)):
        load_plan(_plan(tmp_path, section))


def test_a_bad_pool_stops_load_compare_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, "[pgbouncer.reader]\nmax_client_conn = 1\n" + POOLS)
    code = main(["load", "compare", "--plan", str(plan), "--reports", str(tmp_path / "r")])
    assert code == 2
    assert "[application.reader] max_size 2 is above" in capsys.readouterr().err
    assert not (tmp_path / "r" / "load").exists()


def test_a_budget_under_one_run_is_refused_before_any_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["load", "tune", "--plan", str(PLANS / "as-written"), "--users", "150",
                 "--budget", "30", "--reports", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "--budget 30 s is under one candidate run" in capsys.readouterr().err
    assert not (tmp_path / "load").exists()


@settings(max_examples=25, derandomize=True, deadline=None)
@given(users=st.integers(min_value=1, max_value=400))
def test_tune_measures_only_what_the_arithmetic_admits_smallest_first(users: int) -> None:
    config = with_plan(load_config(), load_plan(PLANS / "as-written"))
    kept, pruned = candidates(config, users=users)
    for cand in kept:
        assert capped_by(cand.config(config), users=users) == []
        assert cand.pool_size + cand.reserve < config.target.max_connections
    for cut in pruned:
        capped = capped_by(cut.candidate.config(config), users=users)
        assert capped or "does not fit" in cut.reason
    sizes = [c.server_connections for c in kept]
    assert sizes == sorted(sizes)
    assert len(kept) + len(pruned) > 0


def test_a_session_reader_is_pruned_at_the_load_it_cannot_admit() -> None:
    config = with_plan(load_config(), load_plan(PLANS / "as-written"))
    kept, pruned = candidates(config, users=150)
    assert kept
    assert all(c.reader_mode == "transaction" for c in kept)
    assert any("session pooling" in p.reason for p in pruned)


def test_the_snippet_is_a_plan_section_that_loads(tmp_path: Path) -> None:
    from harness.load.results import KINDS, RunResult
    from harness.load.tune import Trial, TuneOutcome

    config = with_plan(load_config(), load_plan(PLANS / "as-written"))
    cand = Candidate(reader_mode="transaction", pool_size=10, reserve=5, min_size=1,
                     max_size=10, max_client_conn=1700)  # fmt: skip
    run = RunResult(architecture="target", users=150, requests=10, failures=0,
                    errors_by_kind=dict.fromkeys(KINDS, 0), p50_ms=1, p95_ms=2, p99_ms=3,
                    max_ms=4, requests_per_s=1)  # fmt: skip
    outcome = TuneOutcome(config=config, plan=load_plan(PLANS / "as-written"), users=150)
    text = snippet(outcome, Trial(candidate=cand, run=run, error_reduction=1.0,
                                  p95_reduction=0.4, meets=True))  # fmt: skip
    plan = load_plan(_plan(tmp_path, text))
    assert plan.pgbouncer is not None
    assert plan.application is not None
    assert (plan.pgbouncer.reader.pool_mode, plan.pgbouncer.reader.default_pool_size) == (
        "transaction",
        10,
    )
    assert plan.pgbouncer.writer.max_client_conn == 1700
    assert (plan.application.reader.min_size, plan.application.reader.max_size) == (1, 10)
    assert run_cost(20) > 20
