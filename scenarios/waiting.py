"""Waiting for a condition in a scenario: poll it, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return how long that took."""
    start = time.monotonic()
    delay = 0.005
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} did not happen within {timeout:.1f} sec")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return time.monotonic() - start
