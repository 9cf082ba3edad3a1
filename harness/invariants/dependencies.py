"""Functions that will break when a table they name moves to another schema.

Views, materialized views, defaults, constraints, policies and ``BEGIN ATOMIC``
function bodies are stored parsed, bound to tables by OID: they follow a table
wherever ``ALTER TABLE … SET SCHEMA`` takes it. PL/pgSQL and string-body SQL
functions are stored as text and parsed again at call time, under the caller's
``search_path``. A name that resolved to ``public.orders`` yesterday resolves
to nothing today — only when the function is called, never when the table
moves, so no migration step fails and the breakage reaches users instead.

A function is an offender when its body names a moved table without a schema
and that name does not resolve under a search_path a caller may have: its own
``SET search_path`` if it has one, else both the path sessions had before the
migration and the one the database gives new sessions after it.
"""

from __future__ import annotations

import re

from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import Layout

__all__ = ["check_dependencies"]


_FUNCTIONS = """
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       p.prosrc, coalesce(p.proconfig, '{}'),
       array(SELECT format('%I.%I', tn.nspname, tc.relname) || ' trigger ' || quote_ident(t.tgname)
               FROM pg_trigger t JOIN pg_class tc ON tc.oid = t.tgrelid
               JOIN pg_namespace tn ON tn.oid = tc.relnamespace
              WHERE t.tgfoid = p.oid AND NOT t.tgisinternal)
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_%'
   AND l.lanname IN ('plpgsql', 'sql')
   AND p.prosqlbody IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""

_STRINGS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.S)


def _search_path(value: str) -> list[str]:
    return [p.strip().strip('"') for p in value.split(",") if p.strip()]


def _unqualified_names(body: str, names: set[str]) -> set[str]:
    """Names from ``names`` that ``body`` uses without a schema in front."""
    code = _STRINGS_AND_COMMENTS.sub(" ", body)
    found = set()
    for m in re.finditer(r'(?<![\w.$"])"?([A-Za-z_][\w$]*)"?(?![\w$])', code):
        name = m.group(1).lower() if not m.group(0).startswith('"') else m.group(1)
        if name in names:
            rest = code[m.end() :].lstrip()
            if rest.startswith("."):  # a schema of the same name, or a column of an alias
                continue
            found.add(name)
    return found


def _resolvable(conn: Conn, name: str, path: list[str]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND n.nspname = ANY(%s) AND c.relkind IN ('r','p','v','m','f'))",
        (name, path),
    ).fetchone()
    return bool(row and row[0])


def _database_path(conn: Conn) -> list[str] | None:
    row = conn.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() AND s.setrole = 0"
    ).fetchone()
    settings = row[0] if row else None
    for item in settings if isinstance(settings, list) else []:
        key, _, value = str(item).partition("=")
        if key == "search_path":
            return _search_path(value)
    return None


def check_dependencies(conn: Conn, layout: Layout, *, old_path: list[str] | None = None) -> Check:
    """Name every function (and its triggers) whose body breaks for some caller."""
    moved = {source.split(".", 1)[1]: schema for source, schema in layout.tables.items()}
    before_path = old_path or ["public"]
    paths = [before_path]
    new_path = _database_path(conn)
    if new_path is not None and new_path != before_path:
        paths.append(new_path)
    offenders = []
    for function, body, config, triggers in conn.execute(_FUNCTIONS).fetchall():
        assert isinstance(body, str)
        assert isinstance(config, list)
        assert isinstance(triggers, list)
        own = next(
            (str(c)[len("search_path=") :] for c in config if str(c).startswith("search_path=")),
            None,
        )
        candidates = [_search_path(own)] if own is not None else paths
        for name in sorted(_unqualified_names(body, set(moved))):
            broken = [p for p in candidates if not _resolvable(conn, name, p)]
            if not broken:
                continue
            path = ", ".join(broken[0]) or "(empty)"
            used_by = f"; used by {', '.join(map(str, triggers))}" if triggers else ""
            offenders.append(
                f"function {function} names `{name}` without a schema; {name} is now in "
                f"{moved[name]}, so a caller whose search_path is `{path}` gets "
                f"'relation \"{name}\" does not exist'{used_by} — qualify it as "
                f"{moved[name]}.{name}, or give the function SET search_path"
            )
    return Check.of(
        "dependencies.resolve",
        offenders=offenders,
        ok="no function names a moved table in a way that breaks for any caller",
        failed="functions name moved tables without a schema and break when called",
    )
