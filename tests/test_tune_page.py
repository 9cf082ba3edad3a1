"""tune.html: every measured candidate on the page, the one found with its snippet."""

from __future__ import annotations

from typing import Any

from harness.load.tune_page import tune_html


def _run(p95: float, errors: float) -> dict[str, Any]:
    return {"succeeded_p95_ms": p95, "p95_ms": p95 * 2, "pool_error_rate": errors}


def _doc(trials: list[dict[str, Any]], snippet: str | None) -> dict[str, Any]:
    return {
        "plan": "k<c>t",
        "users": 150,
        "seconds": 321.0,
        "baseline": _run(20.0, 0.3),
        "trials": trials,
        "pruned": [{"candidate": {}, "reason": "session pool"}] * 4,
        "untried": 2,
        "snippet": snippet,
    }


def _trial(connections: int, p95: float, errors: float, *, meets: bool) -> dict[str, Any]:
    return {
        "candidate": {"reader_pool_mode": "transaction", "default_pool_size": connections // 2},
        "server_connections": connections,
        "run": _run(p95, errors),
        "meets": meets,
    }


def test_every_candidate_is_a_row_and_the_found_one_is_pasteable() -> None:
    trials = [_trial(10, 30.0, 0.0, meets=False), _trial(20, 12.0, 0.0, meets=True)]
    page = tune_html(_doc(trials, "[pgbouncer.writer]\npool_mode = \"transaction\""),
                     p95_reduction=0.3, error_reduction=0.8)  # fmt: skip
    assert page.count("<svg") == 1
    assert page.count("<tr>") == 1 + 2  # the header and one row per measured candidate
    assert "<td>20</td><td>reader_pool_mode transaction, default_pool_size 10</td>" in page
    assert page.count("meets both") == 1
    assert "2 measured, 4 pruned by the capacity arithmetic, 2 left untried, in 321.0 s" in page
    assert "<pre>[pgbouncer.writer]\npool_mode = &quot;transaction&quot;</pre>" in page
    assert "k&lt;c&gt;t" in page
    assert "k<c>t" not in page


def test_a_search_that_found_nothing_says_so() -> None:
    page = tune_html(_doc([], None), p95_reduction=0.3, error_reduction=0.8)
    assert "No candidate was measured." in page
    assert "No candidate met both targets." in page
    assert "<svg" not in page
