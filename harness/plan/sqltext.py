"""Splitting a step's SQL into statements, the way the server will see them.

The runner needs statements one by one for two things: to check each statement
of a failed step in a scratch transaction (so one run names every defect), and
to refuse transaction control inside a step (the runner owns the transaction).
The cuts come from PostgreSQL's own lexer (libpg_query, through pglast), so
dollar quotes, nested comments, ``E''`` strings and ``BEGIN ATOMIC`` bodies are
read exactly as the server reads them. A statement with a syntax error is kept
whole and sent as it is, so the server names the error and its line.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parser

__all__ = ["Statement", "split_statements"]

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
        if token.name == "ATOMIC" and previous == "BEGIN_P":
            depth += 1
        elif depth and token.name == "CASE":
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
        begin = next((i + 1 for i in semicolons if i >= stop), len(sql))
    return spans


def split_statements(sql: str) -> list[Statement]:
    """Statements of ``sql`` without their trailing semicolons; blank ones dropped."""
    statements: list[Statement] = []
    for start, end in _cuts(sql):
        chunk = sql[start:end]
        text = chunk.strip()
        if not text:
            continue
        words = [t for t in _tokens(chunk) if t.name not in _COMMENTS]
        if not words:
            continue  # only comments
        first = start + words[0].start
        line = sql.count("\n", 0, first) + 1
        statements.append(Statement(text=text, line=line))
    return statements
