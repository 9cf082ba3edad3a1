"""Splitting step SQL into statements, without a database.

The runner executes a step's statements one by one (to name every failing one)
and reports each failure by line; a splitter that cut a function body or a
string at its semicolon would send the server half a statement and point the
engineer at the wrong line.
"""

from __future__ import annotations

import pytest

from harness.plan.sqltext import Statement, body_names, created_roles, split_statements


def _texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def test_dollar_quoted_body_keeps_its_semicolons() -> None:
    """A plpgsql body is full of semicolons; the statement ends after its closing tag."""
    sql = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n"
        "BEGIN\n"
        "    PERFORM 1;\n"
        "    RETURN $$inner; not a tag end$$::text::int;\n"
        "END\n"
        "$body$;\n"
        "SELECT 2;\n"
    )
    texts = _texts(sql)
    assert len(texts) == 2
    assert texts[0].startswith("CREATE FUNCTION")
    assert texts[0].endswith("$body$")
    assert "PERFORM 1;" in texts[0]
    assert "RETURN $$inner; not a tag end$$" in texts[0]
    assert texts[1] == "SELECT 2"


def test_anonymous_dollar_quote_in_do_block() -> None:
    """``DO $$ … $$`` is how steps run conditional DDL; its body must stay whole."""
    sql = "DO $$ BEGIN IF true THEN RAISE NOTICE 'a;b'; END IF; END $$;\nSELECT 1"
    assert _texts(sql) == [
        "DO $$ BEGIN IF true THEN RAISE NOTICE 'a;b'; END IF; END $$",
        "SELECT 1",
    ]


def test_positional_parameter_is_not_a_dollar_tag() -> None:
    """``$1`` in a SQL function body is a parameter, not the start of a dollar quote."""
    sql = "SELECT $1 + 1; SELECT 2"
    assert _texts(sql) == ["SELECT $1 + 1", "SELECT 2"]


def test_nested_block_comments_hide_semicolons() -> None:
    """PostgreSQL block comments nest, unlike C's: ``*/`` of the inner one does not end it."""
    sql = "/* outer /* inner; */ still a comment; */ SELECT 1; SELECT 2"
    statements = split_statements(sql)
    assert [s.text for s in statements] == [
        "/* outer /* inner; */ still a comment; */ SELECT 1",
        "SELECT 2",
    ]
    assert statements[0].first_words == "SELECT"


def test_line_comment_hides_semicolons() -> None:
    """A ``;`` inside ``-- …`` is prose, not a statement end."""
    sql = "SELECT 1 -- first; second\n, 2;\nSELECT 3"
    assert _texts(sql) == ["SELECT 1 -- first; second\n, 2", "SELECT 3"]


def test_escape_string_with_backslash_quote() -> None:
    r"""In ``E'…'`` a ``\'`` is a quote inside the string, so ``;`` after it is still inside."""
    sql = "SELECT E'it\\'s; still inside', e'\\\\'; SELECT 2"
    assert _texts(sql) == ["SELECT E'it\\'s; still inside', e'\\\\'", "SELECT 2"]


def test_standard_string_backslash_is_not_an_escape() -> None:
    r"""With standard_conforming_strings (on since 9.1) ``'C:\'`` ends at its second quote."""
    sql = "SELECT 'C:\\'; SELECT 2"
    assert _texts(sql) == ["SELECT 'C:\\'", "SELECT 2"]


def test_doubled_quotes_inside_string() -> None:
    """``''`` is one quote inside a string; the string goes on past it."""
    sql = "INSERT INTO t VALUES ('it''s; one value', 'x'); SELECT 2"
    assert _texts(sql) == ["INSERT INTO t VALUES ('it''s; one value', 'x')", "SELECT 2"]


def test_quoted_identifiers_with_semicolons_and_doubled_quotes() -> None:
    """A quoted identifier may hold ``;`` and ``""``; both stay in the statement."""
    sql = 'CREATE TABLE "we;ird ""name""" (id int); SELECT 2'
    assert _texts(sql) == ['CREATE TABLE "we;ird ""name""" (id int)', "SELECT 2"]


def test_line_is_that_of_the_first_word_not_a_comment_above() -> None:
    """Reports say "line N": it must be the statement's own line, not its comment's."""
    sql = (
        "-- step header\n"  # 1
        "CREATE SCHEMA a;\n"  # 2
        "\n"  # 3
        "/* a block\n"  # 4
        "   comment */\n"  # 5
        "  -- and a line comment\n"  # 6
        "  CREATE SCHEMA b;\n"  # 7
        "CREATE SCHEMA c; CREATE SCHEMA d;\n"  # 8
        "CREATE FUNCTION f() RETURNS int AS $$\n"  # 9
        "SELECT 1;\n"  # 10
        "$$ LANGUAGE sql;\n"  # 11
        "\n"  # 12
        "SELECT 'multi\n"  # 13
        "line'; SELECT 2;\n"  # 14
    )
    statements = split_statements(sql)
    assert [(s.first_words, s.line) for s in statements] == [
        ("CREATE SCHEMA A", 2),
        ("CREATE SCHEMA B", 7),
        ("CREATE SCHEMA C", 8),
        ("CREATE SCHEMA D", 8),
        ("CREATE FUNCTION F", 9),
        ("SELECT", 13),  # words inside a string are not keywords
        ("SELECT", 14),
    ]


def test_text_is_stripped_and_keeps_comment_above() -> None:
    """The text keeps the comment above (context for the report) but no outer whitespace."""
    statements = split_statements("\n\n  -- why\n  SELECT 1  ;  \n")
    assert statements == [Statement(text="-- why\n  SELECT 1", line=4)]


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   \n\t\n",
        "-- only a comment",
        "-- a comment\n/* and a block /* nested */ */\n",
        ";;\n;",
        "-- comment;\n;\n/* ; */;",
    ],
    ids=["empty", "whitespace", "line-comment", "comments", "semicolons", "comments-and-semis"],
)
def test_nothing_to_run_gives_no_statements(sql: str) -> None:
    """An empty down step (a comment saying why it needs none) must run nothing at all."""
    assert split_statements(sql) == []


def test_trailing_statement_without_semicolon() -> None:
    """The last statement of a file often has no ``;``; it must not be dropped."""
    statements = split_statements("SELECT 1;\nSELECT 2\n-- trailing comment\n")
    assert [(s.text, s.line) for s in statements] == [
        ("SELECT 1", 1),
        ("SELECT 2\n-- trailing comment", 2),
    ]


def test_unterminated_dollar_quote_runs_to_the_end() -> None:
    """An unclosed body is one (broken) statement for the server to reject with its line."""
    statements = split_statements("SELECT 1;\nDO $$ BEGIN; END;\n")
    assert [(s.text, s.line) for s in statements] == [
        ("SELECT 1", 1),
        ("DO $$ BEGIN; END;", 2),
    ]


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("-- c\nbegin", "BEGIN"),
        ("/* x */ Start Transaction Isolation Level serializable", "START TRANSACTION ISOLATION"),
        ("commit", "COMMIT"),
        ("DO $$ BEGIN END $$", "DO"),  # a body is a string, not keywords
    ],
)
def test_first_words_are_upper_case_without_comments(sql: str, words: str) -> None:
    """The plan loader refuses transaction control by these words; comments must not hide it."""
    (statement,) = split_statements(sql)
    assert statement.first_words == words


# -- relations named by function bodies ---------------------------------------------
_PLPGSQL = """CREATE FUNCTION f(t text) RETURNS SETOF integer LANGUAGE plpgsql AS $b$
DECLARE n integer; r record;
BEGIN
    n := (SELECT count(*) FROM orders);
    INSERT INTO audit_log VALUES (1) RETURNING id INTO n;
    WITH recent AS (SELECT 1) SELECT 1 INTO n FROM recent;
    EXECUTE format('DELETE FROM %I WHERE id = %L', 'carts', t);
    EXECUTE 'UPDATE ' || 'stock' || ' SET n = 0';
    EXECUTE format('SELECT * FROM %I.%I', 'archive', 'orders');
    FOR r IN EXECUTE format('SELECT * FROM %I', t) LOOP END LOOP;
    PERFORM 1 FROM public.customers;
END
$b$"""


def test_plpgsql_body_names_every_relation_and_what_execute_builds() -> None:
    """Static statements, assignments, and EXECUTE strings made of constants and format()."""
    names = body_names(language="plpgsql", source="", definition=_PLPGSQL)
    assert names.unqualified == {"orders", "audit_log", "carts", "stock"}
    assert names.qualified == {("archive", "orders"), ("public", "customers")}
    # A table name taken from a parameter cannot be known before run time: said, not guessed.
    assert len(names.unknown) == 1
    assert "takes a table name from a run-time value" in names.unknown[0]


def test_format_quotes_identifiers_and_literals_as_the_server_does() -> None:
    """%I keeps a mixed-case name's case (quote_ident), %L doubles a quote (quote_literal):
    the name the built statement reaches is the one the server would reach."""
    body = """CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $b$
BEGIN
    EXECUTE format('SELECT * FROM %I WHERE note = %L', 'Accounts', 'it''s');
    EXECUTE format('SELECT * FROM %I.%I', 'Sales', 'Line Items');
    EXECUTE 'DELETE FROM ' || quote_ident('Carts') || ' WHERE note = ' || quote_literal('x');
END
$b$"""
    names = body_names(language="plpgsql", source="", definition=body)
    assert names.unqualified == {"Accounts", "Carts"}
    assert names.qualified == {("Sales", "Line Items")}
    assert names.unknown == ()


def test_sql_body_names_its_relations_and_not_its_ctes() -> None:
    source = "WITH t AS (SELECT * FROM product_variants) SELECT sum(stock) FROM t JOIN x.y ON true"
    names = body_names(language="sql", source=source, definition="")
    assert names.unqualified == {"product_variants"}
    assert names.qualified == {("x", "y")}
    assert names.unknown == ()


def test_a_body_the_parser_refuses_is_reported_not_passed() -> None:
    names = body_names(language="sql", source="SELEC 1", definition="")
    assert names.unqualified == frozenset()
    assert names.unknown
    assert "the parser refuses the body" in names.unknown[0]


def test_begin_atomic_body_keeps_its_semicolons_without_the_parser() -> None:
    """A file the parser refuses is cut by the lexer, which must keep BEGIN ATOMIC whole."""
    sql = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
        "  SELECT CASE WHEN true THEN 1 END; SELECT 2;\nEND;\nSELEC broken;\nSELECT 3"
    )
    assert [s.line for s in split_statements(sql)] == [1, 4, 5]


@pytest.mark.parametrize(
    ("sql", "roles"),
    [
        ('CREATE ROLE kct_app LOGIN; CREATE USER "Bob"; CREATE GROUP g;', {"kct_app", "Bob", "g"}),
        (
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a') THEN "
            "CREATE ROLE a; END IF; END $$;",
            {"a"},
        ),
        ("DO $$ BEGIN EXECUTE format('CREATE ROLE %I LOGIN', 'app_' || 'rw'); END $$;", {"app_rw"}),
        ("GRANT USAGE ON SCHEMA s TO kct_app; ALTER ROLE kct_app SET work_mem = '8MB';", set()),
        ("-- CREATE ROLE ghost\nSELECT 'CREATE ROLE ghost';", set()),
    ],
)
def test_created_roles_are_read_wherever_the_sql_creates_them(sql: str, roles: set[str]) -> None:
    found = created_roles(sql)
    assert found.names == roles
    assert found.unknown == ()


def test_a_role_statement_built_at_run_time_is_named_as_unknown() -> None:
    found = created_roles("DO $$ DECLARE r text := 'x'; BEGIN EXECUTE 'CREATE ROLE ' || r; END $$;")
    assert found.names == frozenset()
    assert found.unknown == ("EXECUTE 'CREATE ROLE ' || r builds its statement at run time",)


def test_a_statement_from_a_variable_is_unknown_whatever_its_words() -> None:
    """``EXECUTE stmt`` names no role in its expression, and may still create one."""
    found = created_roles(
        "DO $$ DECLARE stmt text := 'CREATE ROLE app'; BEGIN EXECUTE stmt; END $$;"
    )
    assert found.names == frozenset()
    assert found.unknown == ("EXECUTE stmt builds its statement at run time",)


def test_a_statement_with_run_time_values_but_no_role_in_it_is_known() -> None:
    """Its words are constants: an ALTER DATABASE of the current database creates no role."""
    found = created_roles(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = sales, public', "
        "current_database()); EXECUTE format('CREATE ROLE %I', current_user || '_app'); END $$;"
    )
    assert found.names == frozenset()
    assert found.unknown == (
        "EXECUTE format('CREATE ROLE %I', current_user || '_app') builds its statement at run time",
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        (
            "create unique index concurrently if not exists i on s.t (a)",
            "CREATE INDEX CONCURRENTLY",
        ),
        ("DROP INDEX CONCURRENTLY IF EXISTS s.i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY s.i", "REINDEX CONCURRENTLY"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("ALTER SYSTEM SET work_mem = '8MB'", "ALTER SYSTEM"),
        ("CREATE DATABASE shop", "CREATE DATABASE"),
        ("CREATE INDEX i ON t (a)", None),
        ("ANALYZE t", None),
        ("REINDEX INDEX s.i", None),
        ("DROP INDEX s.i", None),
        ("CLUSTER t USING i", None),
        ("SELECT 'CREATE INDEX CONCURRENTLY i ON t (a)'", None),
        ("CREATE INDEX CONCURRENTLY ON", None),  # a syntax error: the server names it
    ],
)
def test_statements_that_refuse_a_transaction_block(text: str, why: str | None) -> None:
    (statement,) = split_statements(text)
    assert statement.outside_transaction == why


@pytest.mark.parametrize(
    ("sql", "logins"),
    [
        ("CREATE ROLE a LOGIN", {"a": True}),
        ("CREATE ROLE a", {"a": False}),  # CREATE ROLE defaults to NOLOGIN
        ("CREATE GROUP a", {"a": False}),
        ("CREATE USER a", {"a": True}),  # CREATE USER to LOGIN
        ("CREATE USER a NOLOGIN", {"a": False}),
        ("CREATE ROLE a LOGIN; ALTER ROLE a NOLOGIN", {"a": False}),  # the last word counts
        ("CREATE ROLE a; ALTER ROLE a WITH LOGIN PASSWORD 'x'", {"a": True}),
        ("ALTER ROLE a SET search_path = s", {}),  # says nothing about LOGIN
        (
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a') THEN\n"
            "  CREATE ROLE a; END IF; EXECUTE format('CREATE ROLE %I LOGIN', 'b'); END $$;",
            {"a": False, "b": True},
        ),
    ],
)
def test_created_roles_say_whether_each_can_log_in(sql: str, logins: dict[str, bool]) -> None:
    assert dict(created_roles(sql).logins) == logins


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; -- trailing\n/* b */ SELECT 2\n-- c\n;\nSELECT 3 -- no semicolon at the end",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
        "AS $$ SELECT 1; -- inside $$;\nSELECT 'a;--b'",
        "SELECT 1 /* x */",
    ],
)
def test_a_script_of_terminated_statements_splits_back_into_the_same(sql: str) -> None:
    """The runner sends a step as one script: no statement's end may be lost in a comment."""
    statements = split_statements(sql)
    script = "\n".join(s.terminated for s in statements)
    assert [s.text for s in split_statements(script)] == [s.text for s in statements]
