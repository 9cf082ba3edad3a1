"""Row changes as PostgreSQL's ``test_decoding`` plugin prints them, read back.

``test_decoding`` ships with the server (no extension to install) and prints
each change as one line::

    table public.orders: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 …
    table "My Schema"."T": INSERT: id[integer]:5 note[text]:'it''s' done[boolean]:true
    table public.orders: DELETE: id[integer]:2
    table public.logs: DELETE: (no-tuple-data)

Names are quoted as ``quote_identifier`` quotes them; a value is ``null``, a
bare number or boolean, ``B'0101'`` for bit strings, ``unchanged-toast-datum``
for a TOASTed value an UPDATE left alone, or a quoted literal with quotes
doubled (backslashes are not escaped). The text of a value is its type's output
function's, in the decoding session's settings (see :data:`DECODING_SESSION`),
so it can be handed back to the server as an untyped literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["UNCHANGED_TOAST", "Change", "DecodingError", "parse_change"]

UNCHANGED_TOAST = object()
"""The value of a column an UPDATE did not change and that is stored out of line."""

_IDENT = r'(?:"(?:[^"]|"")*"|[^".:\s\[]+)'
_HEAD = re.compile(rf"table ({_IDENT})\.({_IDENT}): (INSERT|UPDATE|DELETE|TRUNCATE):")
_NAME = re.compile(rf" ?({_IDENT})\[")


class DecodingError(ValueError):
    """A line of ``test_decoding`` output this reader does not understand."""


Value = str | None | object  # text, NULL, or UNCHANGED_TOAST


@dataclass(frozen=True)
class Change:
    """One row change of one transaction."""

    schema: str
    table: str
    op: str  # INSERT, UPDATE, DELETE, TRUNCATE
    #: the new row (INSERT, UPDATE): column -> text
    new: dict[str, Value] = field(default_factory=dict)
    #: the row's key before the change (DELETE; UPDATE when the key changed); None
    #: when the table has no replica identity and the plugin could not say
    old_key: dict[str, Value] | None = None
    #: column -> type name, as ``format_type`` printed it
    types: dict[str, str] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


def _columns(text: str, types: dict[str, str]) -> tuple[dict[str, Value], str]:
    """Columns from the start of ``text`` up to a marker word or its end; the rest."""
    values: dict[str, Value] = {}
    pos = 0
    while pos < len(text):
        if text.startswith(" new-tuple:", pos) or text.startswith("new-tuple:", pos):
            break
        m = _NAME.match(text, pos)
        if m is None:
            raise DecodingError(f"expected a column at {text[pos : pos + 40]!r}")
        name = _unquote(m.group(1))
        end = text.find("]:", m.end())
        if end < 0:
            raise DecodingError(f"column {name}: no type")
        types[name] = text[m.end() : end]
        pos = end + 2
        if text.startswith("'", pos):
            i, chunks = pos + 1, []
            while True:
                q = text.find("'", i)
                if q < 0:
                    raise DecodingError(f"column {name}: unterminated literal")
                chunks.append(text[i:q])
                if text.startswith("''", q):
                    chunks.append("'")
                    i = q + 2
                    continue
                pos = q + 1
                break
            values[name] = "".join(chunks)
        else:
            space = text.find(" ", pos)
            token = text[pos:] if space < 0 else text[pos:space]
            pos = len(text) if space < 0 else space
            if token == "null":
                values[name] = None
            elif token == "unchanged-toast-datum":
                values[name] = UNCHANGED_TOAST
            elif token.startswith("B'") and token.endswith("'"):
                values[name] = token[2:-1]
            else:
                values[name] = token
    return values, text[pos:]


def parse_change(line: str) -> Change:
    """One ``table …`` line of ``test_decoding`` output."""
    m = _HEAD.match(line)
    if m is None:
        raise DecodingError(f"not a row change: {line[:80]!r}")
    schema, table, op = _unquote(m.group(1)), _unquote(m.group(2)), m.group(3)
    rest = line[m.end() :]
    types: dict[str, str] = {}
    if op == "TRUNCATE":
        return Change(schema, table, op)
    if rest.strip() == "(no-tuple-data)":
        return Change(schema, table, op, old_key=None, types=types)
    old_key: dict[str, Value] | None = None
    if rest.startswith(" old-key:"):
        old_key, rest = _columns(rest[len(" old-key:") :], types)
        rest = rest.lstrip()
        if not rest.startswith("new-tuple:"):
            raise DecodingError(f"old key without a new tuple: {line[:80]!r}")
        rest = rest[len("new-tuple:") :]
    values, tail = _columns(rest, types)
    if tail.strip():
        raise DecodingError(f"unread text after the columns: {tail[:40]!r}")
    if op == "DELETE":
        return Change(schema, table, op, old_key=values, types=types)
    return Change(schema, table, op, new=values, old_key=old_key, types=types)
