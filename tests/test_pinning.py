"""Where a local comparison's processes run: the load generator apart from the servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.load.pinning import available_cores, pin_tree, place, placement_lines
from harness.load.projection import Point, erlang_c

TARGET = ("primary", "replica", "PgBouncer writer", "PgBouncer reader")


def test_on_two_cores_locust_gets_one_and_the_target_shares_the_other() -> None:
    placement = place(TARGET, cores=(0, 1), generators=0)
    assert placement is not None
    assert placement.generator == (1,)
    assert set(placement.nodes.values()) == {(0,)}
    baseline = place(("primary",), cores=(0, 1), generators=0)
    # the baseline's one server gets what the target's four share: no side gets more machine
    assert baseline is not None
    assert baseline.nodes == {"primary": (0,)}


def test_with_enough_cores_each_node_has_its_own() -> None:
    placement = place(TARGET, cores=tuple(range(8)), generators=1)
    assert placement is not None
    assert placement.generator == (7,)
    assert placement.nodes["primary"] == (0, 1)  # the spare core goes to the first node
    assert placement.nodes["PgBouncer reader"] == (6,)


def test_one_core_leaves_nothing_to_set_apart() -> None:
    assert place(TARGET, cores=(3,), generators=0) is None


@settings(max_examples=200, deadline=None)
@given(
    cores=st.integers(min_value=2, max_value=16),
    nodes=st.integers(min_value=1, max_value=6),
    generators=st.integers(min_value=0, max_value=20),
)
def test_placement_keeps_the_generator_apart(cores: int, nodes: int, generators: int) -> None:
    names = [f"node{i}" for i in range(nodes)]
    placement = place(names, cores=tuple(range(cores)), generators=generators)
    assert placement is not None
    assert placement.generator
    assert set(placement.generator) <= set(range(cores))
    used = [set(placement.nodes[n]) for n in names]
    assert all(u and not u & set(placement.generator) for u in used)
    shared = all(u == used[0] for u in used)
    disjoint = sum(len(u) for u in used) == len(set().union(*used))
    assert shared or disjoint
    # every core is someone's: the servers get all the generator does not
    assert set().union(*used) | set(placement.generator) == set(range(cores))


def test_a_process_tree_is_pinned_and_its_later_children_inherit() -> None:
    core = min(available_cores())
    # a parent that starts a child only when told: the child is forked after the pinning
    with subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess,sys; sys.stdin.readline(); "
         "c = subprocess.Popen(['sleep', '30']); print(c.pid, flush=True); c.wait()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as parent:  # fmt: skip
        try:
            pin_tree(parent.pid, {core})
            assert parent.stdin is not None
            assert parent.stdout is not None
            parent.stdin.write("go\n")
            parent.stdin.flush()
            child = int(parent.stdout.readline())
            assert os.sched_getaffinity(parent.pid) == {core}
            assert os.sched_getaffinity(child) == {core}
        finally:
            subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
            parent.kill()


def test_the_report_says_what_shared_what() -> None:
    placement = place(TARGET, cores=(0, 1), generators=0)
    assert placement is not None
    (line,) = placement_lines({"target": placement.to_json()})
    assert line == (
        "CPU placement, target: primary and replica and PgBouncer writer and PgBouncer reader "
        "on core 0 (shared); Locust on core 1"
    )
    assert "not pinned" in placement_lines({})[0]


def test_pinned_nodes_wait_only_among_their_own_cores() -> None:
    cpu_ms = {"primary": 2.0, "Locust": 1.0}
    pinned = Point(p95_ms=10.0, rate=100.0, cpu_ms=cpu_ms,
                   placement={"primary": (0,), "Locust": (1,)})  # fmt: skip
    # two M/M/1 queues: rho / (1 - rho) each, one wake-up each
    assert pinned.shared_wait_factor(2) == pytest.approx(0.2 / 0.8 + 0.1 / 0.9)
    shared = Point(p95_ms=10.0, rate=100.0, cpu_ms=cpu_ms)
    # one M/M/2 queue with both on it, two wake-ups
    chance = erlang_c(2, 0.3)
    assert chance is not None
    assert shared.shared_wait_factor(2) == pytest.approx(2 * chance / (2 - 0.3))
