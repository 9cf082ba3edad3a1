"""How the runner names who blocked a step: a server process by what it is, with its rule."""

from __future__ import annotations

from harness.runner.locks import Blocker


def _blocker(query: str, *, backend_type: str) -> Blocker:
    return Blocker(
        4242, "", "", "active", 3.2, query, backend_type=backend_type, deadlock_timeout="1s"
    )


def test_an_autovacuum_worker_is_named_with_when_it_gives_way() -> None:
    text = str(
        _blocker("autovacuum: VACUUM ANALYZE public.orders", backend_type="autovacuum worker")
    )
    assert text.startswith("pid 4242 (an autovacuum worker, `autovacuum: VACUUM ANALYZE")
    assert "no application_name" not in text
    assert "only after deadlock_timeout (1s here)" in text
    assert "set lock_timeout above deadlock_timeout" in text


def test_a_vacuum_against_wraparound_is_said_never_to_give_way() -> None:
    query = "autovacuum: VACUUM public.orders (to prevent wraparound)"
    text = str(_blocker(query, backend_type="autovacuum worker"))
    assert "never gives way" in text
    assert "lock_timeout above" not in text


def test_other_server_processes_and_client_sessions() -> None:
    assert "(a walsender, a server process" in str(_blocker("", backend_type="walsender"))
    client = str(_blocker("SELECT 1", backend_type="client backend"))
    assert "no application_name, user , active" in client
