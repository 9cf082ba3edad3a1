"""Splitting a step's SQL into statements, the way the server will see them.

The runner needs statements one by one for two things: to check each statement
of a failed step in a scratch transaction (so one run names every defect), and
to refuse transaction control inside a step (the runner owns the transaction).
The cuts come from PostgreSQL's own lexer (libpg_query, through pglast), so
dollar quotes, nested comments, ``E''`` strings and ``BEGIN ATOMIC`` bodies are
read exactly as the server reads them. A statement with a syntax error is kept
whole and sent as it is, so the server names the error and its line.

The same parser reads stored function bodies (SQL, and PL/pgSQL with its own
grammar) for the tables they name, including the statements ``EXECUTE`` builds
from constants, ``||`` and ``format()``; what only run time can tell is said.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pglast import parser

__all__ = ["BodyNames", "Statement", "body_names", "split_statements"]

_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first word (not of a comment above it)

    @property
    def summary(self) -> str:
        """The statement on one line, comments left out, cut at 100 characters."""
        text = " ".join(_without_comments(self.text).split())
        return text if len(text) <= 100 else text[:99] + "…"

    @property
    def terminated(self) -> str:
        """The text ended by a semicolon, for a script of several statements: on a line of
        its own when the text ends in a comment, which would swallow it."""
        tokens = _tokens(self.text)
        return self.text + ("\n;" if tokens and tokens[-1].name in _COMMENTS else ";")

    @property
    def outside_transaction(self) -> str | None:
        """What PostgreSQL refuses to run in a transaction block (SQLSTATE 25001), if this is."""
        try:
            tree = json.loads(parser.parse_sql_json(self.text))
        except parser.ParseError:
            return None  # sent as it is: the server names the syntax error
        for entry in tree.get("stmts", []):
            for kind, node in entry.get("stmt", {}).items():
                why = _outside_transaction(kind, node)
                if why is not None:
                    return why
        return None

    @property
    def first_words(self) -> str:
        """The statement's opening keywords, upper-case, comments left out."""
        words = []
        for token in _tokens(self.text):
            if token.name in _COMMENTS:
                continue
            word = self.text[token.start : token.end + 1]
            if not word.replace("_", "").isalpha():
                break
            words.append(word.upper())
            if len(words) == 3:
                break
        return " ".join(words)


_ALWAYS_OUTSIDE = {
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
}


def _outside_transaction(kind: str, node: dict[str, Any]) -> str | None:
    if kind in _ALWAYS_OUTSIDE:
        return _ALWAYS_OUTSIDE[kind]
    if kind == "IndexStmt" and node.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and node.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt" and any(
        p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params", [])
    ):
        return "REINDEX CONCURRENTLY"
    if kind == "VacuumStmt" and node.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ClusterStmt" and "relation" not in node:
        return "CLUSTER of every table"
    return None


def _tokens(text: str) -> list[parser.Token]:
    try:
        return list(parser.scan(text))
    except parser.ParseError as exc:
        # An unterminated string, quote or comment: the lexer stops where it starts, and
        # it runs to the end of the text, as the server would read it.
        where = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        head = _tokens(text[:where]) if 0 < where < len(text) else []
        return [*head, parser.Token(where, len(text) - 1, "UNTERMINATED", "NO_KEYWORD")]


def _without_comments(text: str) -> str:
    out, pos = [], 0
    for token in _tokens(text):
        if token.name in _COMMENTS:
            out.append(text[pos : token.start])
            pos = token.end + 1
    out.append(text[pos:])
    return " ".join(out)


def _cuts_by_lexer(sql: str) -> list[tuple[int, int]]:
    """Statement spans cut at top-level semicolons; for text the parser refuses.

    A ``BEGIN ATOMIC`` body holds semicolons up to its ``END``, where a CASE
    inside it also ends with END: count them.
    """
    spans: list[tuple[int, int]] = []
    tokens = [t for t in _tokens(sql) if t.name not in _COMMENTS]
    start, depth, previous = 0, 0, ""
    for token in tokens:
        if (token.name == "ATOMIC" and previous == "BEGIN_P") or (depth and token.name == "CASE"):
            depth += 1
        elif depth and token.name == "END_P":
            depth -= 1
        elif token.name == "ASCII_59" and not depth:
            spans.append((start, token.start))
            start = token.end + 1
        previous = token.name
    spans.append((start, len(sql)))
    return spans


def _cuts(sql: str) -> list[tuple[int, int]]:
    try:
        slices = parser.split(sql, with_parser=True, only_slices=True)
    except parser.ParseError:
        return _cuts_by_lexer(sql)
    # The parser's slices leave out comments before a statement; keep them with it, as
    # written, so a statement's text reads as in its file.
    semicolons = [t.start for t in _tokens(sql) if t.name == "ASCII_59"]
    spans, begin = [], 0
    for s in slices:
        stop = s.stop if s.stop is not None else len(sql)
        spans.append((begin, stop))
        after = bisect.bisect_left(semicolons, stop)  # the first semicolon at or past stop
        begin = semicolons[after] + 1 if after < len(semicolons) else len(sql)
    return spans


def split_statements(sql: str) -> list[Statement]:
    """Statements of ``sql`` without their trailing semicolons; blank ones dropped."""
    statements: list[Statement] = []
    line, counted = 1, 0  # lines counted on from the last statement, not from the top
    for start, end in _cuts(sql):
        chunk = sql[start:end]
        text = chunk.strip()
        if not text:
            continue
        words = [t for t in _tokens(chunk) if t.name not in _COMMENTS]
        if not words:
            continue  # only comments
        first = start + words[0].start
        line += sql.count("\n", counted, first)
        counted = first
        statements.append(Statement(text=text, line=line))
    return statements


# -- the relations a function body names --------------------------------------------
@dataclass(frozen=True)
class BodyNames:
    """What a stored function body names, read by PostgreSQL's own parser.

    ``unqualified`` are relation names written without a schema (resolved at call
    time through the caller's search_path), CTE names left out. ``unknown`` says
    why part of the body could not be read: a statement built at run time from
    values only known then, or text the parser refuses.
    """

    unqualified: frozenset[str]
    qualified: frozenset[tuple[str, str]]
    unknown: tuple[str, ...]


_PLACEHOLDER = "pgcutover_runtime_value"


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _statement_names(sql: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Relations named in ``sql`` (one or more statements); raises ParseError."""
    tree = json.loads(parser.parse_sql_json(sql))
    ctes = {str(n["CommonTableExpr"]["ctename"]) for n in _walk(tree) if "CommonTableExpr" in n}
    unqualified: set[str] = set()
    qualified: set[tuple[str, str]] = set()
    for rv in _walk(tree):
        # A RangeVar, wrapped ({"RangeVar": …}) in node lists, bare where a field is typed.
        if "relname" not in rv:
            continue
        name = str(rv.get("relname", ""))
        if rv.get("schemaname"):
            qualified.add((str(rv["schemaname"]), name))
        elif name not in ctes:
            unqualified.add(name)
    return unqualified, qualified


def _quote_ident(value: str) -> str:
    """As the server's quote_ident: quoted, so "Accounts" keeps its case."""
    return '"' + value.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_QUOTES = {"quote_ident": _quote_ident, "quote_literal": _quote_literal}


def _constant(node: dict[str, Any]) -> str | None:
    """The text an expression of constants evaluates to; placeholders for the rest."""
    if "A_Const" in node:
        const = node["A_Const"]
        for key, field_ in (("sval", "sval"), ("ival", "ival"), ("fval", "fval")):
            if key in const:
                value = const[key].get(field_, 0 if key == "ival" else "")
                return str(value)
        return None
    if "TypeCast" in node:
        return _constant(node["TypeCast"]["arg"])
    if "A_Expr" in node:
        expr = node["A_Expr"]
        names = [n.get("String", {}).get("sval") for n in expr.get("name", [])]
        if names == ["||"]:
            left, right = _constant(expr["lexpr"]), _constant(expr["rexpr"])
            return None if left is None or right is None else left + right
        return None
    if "FuncCall" in node:
        call = node["FuncCall"]
        name = [n.get("String", {}).get("sval") for n in call.get("funcname", [])][-1]
        args = [_constant(a) for a in call.get("args", [])]
        if name == "format" and args and args[0] is not None:
            return _format(args[0], args[1:])
        if name == "concat":
            return "".join(a if a is not None else _PLACEHOLDER for a in args)
        if name in _QUOTES and len(args) == 1:
            return _QUOTES[name](args[0]) if args[0] is not None else _PLACEHOLDER
        return None
    return _PLACEHOLDER if "ColumnRef" in node or "ParamRef" in node else None


def _format(pattern: str, args: list[str | None]) -> str:
    """``format()`` with its %s, %I, %L and %% (positions like %1$s included)."""
    out, i, n = [], 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        m = re.match(r"%(?:(\d+)\$)?-?\d*([sIL%])", pattern[i:])
        if not m:
            out.append(ch)
            i += 1
            continue
        if m.group(2) == "%":
            out.append("%")
        else:
            index = int(m.group(1)) - 1 if m.group(1) else n
            n = index + 1
            value = args[index] if index < len(args) else None
            kind = m.group(2)
            if value is None:
                out.append(_PLACEHOLDER)
            elif kind == "I":
                out.append(_quote_ident(value))
            elif kind == "L":
                out.append(_quote_literal(value))
            else:
                out.append(value)
        i += len(m.group(0))
    return "".join(out)


def _short(expression: str) -> str:
    text = " ".join(expression.split())
    return text if len(text) <= 60 else text[:59] + "…"


def _built_text(expression: str) -> str | None:
    """The text an ``EXECUTE`` expression builds from constants, None where it cannot tell;
    raises ParseError (or KeyError, IndexError) for what is no expression at all."""
    tree = json.loads(parser.parse_sql_json(f"SELECT {expression}"))
    return _constant(tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]["val"])


def _dynamic_names(expression: str) -> tuple[set[str], set[tuple[str, str]], str | None]:
    """Names in the SQL an ``EXECUTE`` expression builds, as far as constants tell."""
    try:
        text = _built_text(expression)
    except (parser.ParseError, KeyError, IndexError):
        return set(), set(), f"EXECUTE {_short(expression)} is not an expression the parser reads"
    if text is None:
        return set(), set(), f"EXECUTE {_short(expression)} builds its statement at run time"
    try:
        unqualified, qualified = _statement_names(text)
    except parser.ParseError:
        return set(), set(), f"EXECUTE {_short(expression)} builds its statement at run time"
    if _PLACEHOLDER in unqualified or any(_PLACEHOLDER in q for q in qualified):
        why = f"EXECUTE {_short(expression)} takes a table name from a run-time value"
        return unqualified - {_PLACEHOLDER}, qualified, why
    return unqualified, qualified, None


_DYNAMIC = {"PLpgSQL_stmt_dynexecute": "query", "PLpgSQL_stmt_dynfors": "query"}


def _plpgsql_names(definition: str) -> BodyNames:
    unqualified: set[str] = set()
    qualified: set[tuple[str, str]] = set()
    unknown: list[str] = []
    tree = json.loads(parser.parse_plpgsql_json(definition))
    dynamic: set[int] = set()
    for node in _walk(tree):
        for kind, body in node.items():
            if not isinstance(body, dict):
                continue
            key = _DYNAMIC.get(kind, "dynquery")
            expr = (
                body.get(key, {}).get("PLpgSQL_expr") if isinstance(body.get(key), dict) else None
            )
            if expr is None:
                continue
            dynamic.add(id(expr))
            names, quals, why = _dynamic_names(str(expr["query"]))
            unqualified |= names
            qualified |= quals
            if why:
                unknown.append(why)
    for node in _walk(tree):
        expr = node.get("PLpgSQL_expr")
        if not isinstance(expr, dict) or id(expr) in dynamic:
            continue
        query, mode = str(expr["query"]), int(expr.get("parseMode", 0))
        if mode >= 3:  # an assignment: "target := expression"
            query = query.split(":=", 1)[1] if ":=" in query else query.split("=", 1)[-1]
        text = query if mode == 0 else f"SELECT {query}"
        try:
            names, quals = _statement_names(text)
        except parser.ParseError as exc:
            unknown.append(f"{query[:60]!r}: {exc.args[0] if exc.args else exc}")
            continue
        unqualified |= names
        qualified |= quals
    return BodyNames(frozenset(unqualified), frozenset(qualified), tuple(unknown))


def body_names(*, language: str, source: str, definition: str) -> BodyNames:
    """The relations a function body names: ``source`` is ``prosrc``, ``definition`` the
    whole ``CREATE FUNCTION`` (the PL/pgSQL parser needs the signature to read a body)."""
    try:
        if language == "plpgsql":
            return _plpgsql_names(definition)
        if language == "sql":
            unqualified, qualified = _statement_names(source)
            return BodyNames(frozenset(unqualified), frozenset(qualified), ())
    except parser.ParseError as exc:
        why = exc.args[0] if exc.args else str(exc)
        return BodyNames(frozenset(), frozenset(), (f"the parser refuses the body: {why}",))
    return BodyNames(frozenset(), frozenset(), (f"a {language} body is not SQL",))


# -- the roles a plan's SQL creates -------------------------------------------------
@dataclass(frozen=True)
class CreatedRoles:
    """Roles that ``CREATE ROLE``/``USER``/``GROUP`` statements of some SQL create.

    Read at the top level, inside ``DO`` blocks, and inside their ``EXECUTE``
    strings where constants (``||``, ``format()``) tell the text. ``unknown`` says
    where a statement is built from values known only at run time.
    """

    names: frozenset[str]
    unknown: tuple[str, ...]
    #: whether each role named by CREATE or ALTER ROLE can log in after them, in order
    #: (CREATE ROLE and CREATE GROUP default to NOLOGIN, CREATE USER to LOGIN)
    logins: Mapping[str, bool] = field(default_factory=dict)


def _can_login(stmt: dict[str, Any], *, default: bool | None) -> bool | None:
    for option in stmt.get("options", []):
        element = option.get("DefElem", {})
        if element.get("defname") == "canlogin":
            return bool(element.get("arg", {}).get("Boolean", {}).get("boolval", False))
    return default


def _roles_in(
    tree: object, *, roles: set[str], unknown: list[str], logins: dict[str, bool]
) -> None:
    for node in _walk(tree):
        stmt = node.get("CreateRoleStmt")
        if isinstance(stmt, dict) and "role" in stmt:
            roles.add(str(stmt["role"]))
            logins[str(stmt["role"])] = bool(
                _can_login(stmt, default=stmt.get("stmt_type") == "ROLESTMT_USER")
            )
        alter = node.get("AlterRoleStmt")
        if isinstance(alter, dict):
            name = alter.get("role", {}).get("rolename")
            login = _can_login(alter, default=None)
            if name is not None and login is not None:
                logins[str(name)] = login
        do = node.get("DoStmt")
        if isinstance(do, dict):
            options = {
                str(a["DefElem"]["defname"]): str(a["DefElem"]["arg"]["String"]["sval"])
                for a in do.get("args", [])
                if "DefElem" in a
            }
            if "as" in options and options.get("language", "plpgsql") == "plpgsql":
                _roles_in_plpgsql(options["as"], roles=roles, unknown=unknown, logins=logins)


def _roles_in_plpgsql(
    body: str, *, roles: set[str], unknown: list[str], logins: dict[str, bool]
) -> None:
    definition = (
        "CREATE FUNCTION pgcutover_do() RETURNS void LANGUAGE plpgsql AS "
        f"$pgcutover_body${body}$pgcutover_body$"
    )
    try:
        tree = json.loads(parser.parse_plpgsql_json(definition))
    except parser.ParseError as exc:
        unknown.append(f"a DO block the parser refuses: {exc.args[0] if exc.args else exc}")
        return
    for node in _walk(tree):
        for kind, stmt in node.items():
            expression = ""
            if kind == "PLpgSQL_stmt_execsql":
                text = str(stmt["sqlstmt"]["PLpgSQL_expr"]["query"])
            elif kind == "PLpgSQL_stmt_dynexecute":
                expression = str(stmt["query"]["PLpgSQL_expr"]["query"])
                try:
                    built = _built_text(expression)
                except (parser.ParseError, KeyError, IndexError):
                    built = None
                if built is None:
                    # The whole statement comes from a run-time value: it may be a CREATE ROLE.
                    unknown.append(f"EXECUTE {_short(expression)} builds its statement at run time")
                    continue
                text = built
            else:
                continue
            try:
                parsed = json.loads(parser.parse_sql_json(text))
            except parser.ParseError:
                if _PLACEHOLDER in text:  # run-time values where the parser needs words
                    unknown.append(f"EXECUTE {_short(expression)} builds its statement at run time")
                continue
            found: set[str] = set()
            _roles_in(parsed, roles=found, unknown=unknown, logins=logins)
            if _PLACEHOLDER in found:  # CREATE ROLE of a name known only at run time
                unknown.append(f"EXECUTE {_short(expression)} builds its statement at run time")
            roles |= found - {_PLACEHOLDER}


def created_roles(sql: str) -> CreatedRoles:
    """The roles ``sql`` creates, read by PostgreSQL's parser (see :class:`CreatedRoles`)."""
    roles: set[str] = set()
    unknown: list[str] = []
    logins: dict[str, bool] = {}
    for statement in split_statements(sql):
        try:
            tree = json.loads(parser.parse_sql_json(statement.text))
        except parser.ParseError:
            continue  # the runner reports it, with its line
        _roles_in(tree, roles=roles, unknown=unknown, logins=logins)
    logins.pop(_PLACEHOLDER, None)
    return CreatedRoles(frozenset(roles), tuple(unknown), logins)
