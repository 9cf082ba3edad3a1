"""CPU seconds read from /proc: a process's own and its reaped children's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness.load.cpu import cpu_seconds, per_request_ms


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_process_and_its_exited_children_are_counted() -> None:
    me = {"harness": os.getpid()}
    before = cpu_seconds(me)["harness"]
    _burn(0.3)
    subprocess.run(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
         "while time.process_time() < end: pass"],
        check=True,
    )  # fmt: skip
    spent = cpu_seconds(me)["harness"] - before
    # our 0.3 s and the reaped child's 0.3 s (ticks of 10 ms: a little slack)
    assert spent >= 0.55, spent


def test_a_process_gone_is_left_out_and_per_request_divides() -> None:
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    assert cpu_seconds({"gone": 2**22 + 12345}) == {}
    assert per_request_ms({"a": 1.0, "b": 0.0}, {"a": 3.0, "c": 1.0}, requests=1000) == {"a": 2.0}
    assert per_request_ms({"a": 1.0}, {"a": 3.0}, requests=0) == {}
