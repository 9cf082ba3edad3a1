"""Splitting an SQL script into statements for the bulk load's builders."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.legacy.bulk import split_statements
from harness.legacy.loader import _schema_sections


def test_semicolons_inside_quotes_bodies_and_comments_do_not_split() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;
        CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
        COMMENT ON TABLE t IS 'it''s; fine';
        /* block; comment */ CREATE INDEX "odd;name" ON t (a);
    """
    assert [s.split()[0:3] for s in split_statements(script)] == [
        ["--", "a", "comment;"],
        ["CREATE", "FUNCTION", "g()"],
        ["COMMENT", "ON", "TABLE"],
        ["/*", "block;", "comment"],
    ]
    assert "SELECT 1; $$" in split_statements(script)[0]
    assert split_statements(script)[3].endswith('CREATE INDEX "odd;name" ON t (a)')


def test_the_schemas_post_data_splits_into_whole_statements() -> None:
    _, post_data = _schema_sections()
    statements = split_statements(post_data)
    # 7 unique keys, 8 ALTER TABLEs adding the 11 foreign keys, 12 indexes, 7 triggers,
    # a function and a view.
    assert len(statements) == 7 + 8 + 12 + 7 + 1 + 1
    assert all(not s.endswith(";") for s in statements)
    assert statements[-1].startswith("CREATE VIEW order_summaries")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="abc ;'$\n-", max_size=12), min_size=1, max_size=6))
def test_statements_without_quoting_split_at_every_semicolon(parts: list[str]) -> None:
    plain = [p.replace(";", "").replace("'", "").replace("$", "").replace("-", "") for p in parts]
    script = ";".join(plain)
    assert split_statements(script) == [p.strip() for p in plain if p.strip()]
