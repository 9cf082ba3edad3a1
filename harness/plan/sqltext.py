"""Splitting a step's SQL into statements, the way the server will see them.

The runner needs statements one by one for two things: to check each statement
of a failed step in a scratch transaction (so one run names every defect), and
to refuse transaction control inside a step (the runner owns the transaction).
A splitter that ignored dollar quoting would cut a function body in half.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Statement", "split_statements"]


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first character in its file

    @property
    def summary(self) -> str:
        """The statement on one line, comments left out, cut at ``limit`` characters."""
        text = " ".join(_strip_comments(self.text).split())
        return text if len(text) <= 100 else text[:99] + "…"

    @property
    def first_words(self) -> str:
        """The statement's opening keywords, upper-case, comments left out."""
        words = re.findall(r"[A-Za-z_]+", _strip_comments(self.text))
        return " ".join(words[:3]).upper()


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def _comment_end(text: str, i: int) -> int | None:
    """Where the comment that starts at ``i`` ends; None when none starts there."""
    if text.startswith("--", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        return _skip_block_comment(text, i)
    return None


def _strip_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        end = _comment_end(text, i)
        if end is None:
            out.append(text[i])
            i += 1
        else:
            i = end
    return "".join(out)


def _skip_block_comment(text: str, i: int) -> int:
    depth, i, n = 1, i + 2, len(text)  # PostgreSQL block comments nest
    while i < n and depth:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _skip_quoted(text: str, i: int, quote: str) -> int:
    i, n = i + 1, len(text)
    while i < n:
        if text[i] == quote:
            if i + 1 < n and text[i + 1] == quote:  # doubled quote inside
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_escape_string(text: str, i: int) -> int:
    i, n = i + 2, len(text)  # past E'
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "'":
            if i + 1 < n and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return n


def split_statements(sql: str) -> list[Statement]:
    """Statements of ``sql`` without their trailing semicolons; blank ones dropped."""
    statements: list[Statement] = []
    start, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        comment_end = _comment_end(sql, i)
        if comment_end is not None:
            i = comment_end
        elif ch in "eE" and sql.startswith("'", i + 1) and (i == 0 or not _ident(sql[i - 1])):
            i = _skip_escape_string(sql, i)
        elif ch == "'" or ch == '"':
            i = _skip_quoted(sql, i, ch)
        elif ch == "$" and (i == 0 or not _ident(sql[i - 1])):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                end = sql.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        elif ch == ";":
            _add(statements, sql, start, i)
            start = i = i + 1
        else:
            i += 1
    _add(statements, sql, start, n)
    return statements


def _ident(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _add(statements: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    if not _strip_comments(chunk).strip():
        return
    i = start
    while True:  # the statement's line is that of its first word, not of a comment above
        while i < end and sql[i].isspace():
            i += 1
        comment_end = _comment_end(sql, i)
        if comment_end is None:
            break
        i = comment_end
    line = sql.count("\n", 0, i) + 1
    statements.append(Statement(text=chunk.strip(), line=line))
