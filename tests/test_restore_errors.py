"""What a failed ``pg_restore -j`` says, read back from the stderr its workers share."""

from __future__ import annotations

from pathlib import Path

from harness.legacy.loader import _load_failed

# As captured from a truncated archive: one worker's prefix landed before another
# worker's whole line, and its own text on the line after.
TANGLED = (
    "pg_restore:pg_restore: error: could not find block ID 3512 in archive -- possibly "
    "corrupt archive\n"
    " error: could not read from input file: end of file\n"
    "pg_restore: error: a worker process died unexpectedly\n"
)


def test_interleaved_worker_messages_are_shown_whole() -> None:
    error = _load_failed(
        Path("legacy.dump"), kind="custom archive", database="app", failure=(1, TANGLED)
    )
    shown = str(error).split("--- last lines from pg_restore ---\n", 1)[1].splitlines()
    assert shown == [
        "pg_restore: error: could not find block ID 3512 in archive -- possibly corrupt archive",
        "pg_restore: error: could not read from input file: end of file",
        "pg_restore: error: a worker process died unexpectedly",
    ]


def test_a_message_cut_at_its_start_is_left_out_of_the_tail() -> None:
    long = "pg_restore: error: first\n" + " a line of its detail\n" * 20
    error = _load_failed(
        Path("legacy.dump"),
        kind="custom archive",
        database="app",
        failure=(1, long + "pg_restore: error: last\n"),
    )
    tail = str(error).split("--- last lines from pg_restore ---\n", 1)[1]
    assert tail == "pg_restore: error: last"
