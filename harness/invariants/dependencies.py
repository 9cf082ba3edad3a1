"""Code that will break when a table it names has moved to another schema.

Views, materialized views, defaults, constraints, policies and ``BEGIN ATOMIC``
function bodies are stored parsed, bound to tables by OID: they follow a table
wherever ``ALTER TABLE … SET SCHEMA`` takes it. PL/pgSQL and string-body SQL
functions are stored as text and parsed again at call time, under the caller's
``search_path``. A name that resolved to ``public.orders`` yesterday resolves
to nothing today — only when the function is called, never when the table
moves, so no migration step fails and the breakage reaches users instead.

Bodies are read by PostgreSQL's own parser (statements ``EXECUTE`` builds from
constants and ``format()`` included). Each name of a moved table is resolved
under every search_path a caller may have: the function's own ``SET
search_path`` if it has one, else the paths sessions had before the migration
and have after it — read from the database (per database, per role, the
server's default), never assumed. Two findings:

- the name resolves to nothing under some path: the function breaks (fail);
- it resolves only through a compatibility view (a view left under the table's
  old name): it works today and breaks the day the views are dropped. A view,
  default or constraint bound to such a view is the same. A warning by default;
  ``compatibility_views = "fail"`` makes it a failure for the contract phase.

A body that cannot be read in full (a table name known only at run time) is
said in the verdict, so silence never stands for "checked".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg

from harness.catalog import Fingerprint
from harness.catalog.fingerprint import read_settings
from harness.connections import Conn
from harness.invariants.result import Check
from harness.plan import Layout
from harness.plan.sqltext import body_names

__all__ = ["check_dependencies", "search_paths"]


_FUNCTIONS = """
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       l.lanname, p.prosrc, pg_get_functiondef(p.oid), coalesce(p.proconfig, '{}'),
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
   AND p.prokind IN ('f', 'p')
   AND p.prosqlbody IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""

# What is bound (by OID) to a view: other views' rules, defaults, constraints,
# BEGIN ATOMIC bodies, triggers' WHEN clauses and policies.
_BOUND_TO = """
SELECT DISTINCT CASE d.classid
         WHEN 'pg_rewrite'::regclass THEN
           (SELECT CASE c.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END
                   || r.ev_class::regclass::text
              FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
         ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END
  FROM pg_depend d
 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s::regclass
   AND d.deptype = 'n'
   AND NOT (d.classid = 'pg_rewrite'::regclass
            AND (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objid) = d.refobjid)
 ORDER BY 1
"""


def _parse_path(value: str) -> list[str]:
    out = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith('"') and part.endswith('"'):
            part = part[1:-1].replace('""', '"')
        if part:
            out.append(part)
    return out


def _server_path(conn: Conn) -> list[str]:
    """The path a session gets from the server alone: postgresql.conf, else built in.

    pg_file_settings is readable by superusers and pg_read_all_settings only; for
    anyone else the built-in default stands in.
    """
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT setting FROM pg_file_settings WHERE name = 'search_path' AND applied"
                " ORDER BY seqno DESC LIMIT 1"
            ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        row = None
    if row is None:
        row = conn.execute("SELECT boot_val FROM pg_settings WHERE name = 'search_path'").fetchone()
    return _parse_path(str(row[0]) if row else '"$user", public')


def search_paths(
    settings: Mapping[str, Mapping[str, str]], *, server: list[str]
) -> list[list[str]]:
    """Every search_path a session may start with: the database's (else the server's),
    and each role's own (``ALTER ROLE … [IN DATABASE …] SET search_path``)."""
    base = settings.get("database", {}).get("search_path")
    paths = [_parse_path(base) if base is not None else server]
    for scope, values in settings.items():
        # ALTER ROLE … IN DATABASE overrides the role's own setting in this database.
        shadowed = (
            f"{scope} in database" in settings and "search_path" in settings[f"{scope} in database"]
        )
        if scope.startswith("role ") and "search_path" in values and not shadowed:
            paths.append(_parse_path(values["search_path"]))
    unique: list[list[str]] = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


class _Resolver:
    """Where an unqualified name lands under a search_path, as the server would look."""

    def __init__(self, conn: Conn) -> None:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        ).fetchall()
        self.kinds = {(str(s), str(n)): str(k) for s, n, k in rows}

    def resolve(self, name: str, path: Iterable[str]) -> str | None:
        # pg_catalog is searched first when the path does not place it.
        order = list(path)
        if "pg_catalog" not in order:
            order.insert(0, "pg_catalog")
        for schema in order:
            if (schema, name) in self.kinds:
                return schema
        return None


def _moved(layout: Layout, before: Fingerprint | None, conn: Conn) -> dict[str, tuple[str, str]]:
    """Moved table name -> (old schema, new schema), from the layout and what really moved."""
    moved = {}
    for source, schema in layout.tables.items():
        old_schema, name = source.split(".", 1)
        moved[name] = (old_schema, schema)
    if before is not None:
        now = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f')"
        ).fetchall()
        where: dict[str, list[str]] = {}
        for schema_name, table_name in now:
            where.setdefault(str(table_name), []).append(str(schema_name))
        for table in before.tables.values():
            schemas = where.get(table.name, [])
            if table.schema not in schemas and len(schemas) == 1:
                moved.setdefault(table.name, (table.schema, schemas[0]))
    return moved


def _path_text(path: list[str]) -> str:
    return ", ".join(path) or "(empty)"


def check_dependencies(
    conn: Conn,
    layout: Layout,
    *,
    before: Fingerprint | None = None,
    compatibility_views: str = "warn",
) -> Check:
    """Name every function (and its triggers), view or default that breaks for some caller."""
    moved = _moved(layout, before, conn)
    server = _server_path(conn)
    old_paths = search_paths(before.settings, server=server) if before is not None else []
    new_paths = search_paths(read_settings(conn), server=server)
    paths = old_paths + [p for p in new_paths if p not in old_paths]
    resolver = _Resolver(conn)
    broken: list[str] = []
    through_views: list[str] = []
    unread: list[str] = []
    for function, language, source, definition, config, triggers in conn.execute(
        _FUNCTIONS
    ).fetchall():
        assert isinstance(config, list)
        assert isinstance(triggers, list)
        names = body_names(language=str(language), source=str(source), definition=str(definition))
        unread.extend(f"{function}: {why}" for why in dict.fromkeys(names.unknown))
        own = next((str(c)[len("search_path=") :] for c in config
                    if str(c).startswith("search_path=")), None)  # fmt: skip
        candidates = [_parse_path(own)] if own is not None else paths
        used_by = f"; used by {', '.join(map(str, triggers))}" if triggers else ""
        for name in sorted(names.unqualified & moved.keys()):
            old_schema, new_schema = moved[name]
            fix = f"qualify it as {new_schema}.{name}, or give the function SET search_path"
            for path in candidates:
                found = resolver.resolve(name, path)
                if found is None:
                    broken.append(
                        f"function {function} names `{name}` without a schema; {name} is now "
                        f"in {new_schema}, so a caller whose search_path is `{_path_text(path)}`"
                        f" gets 'relation \"{name}\" does not exist'{used_by} — {fix}"
                    )
                    break
                if found != new_schema and resolver.kinds.get((found, name)) == "v":
                    through_views.append(
                        f"function {function} reaches `{name}` only through the compatibility "
                        f"view {found}.{name} for a caller whose search_path is "
                        f"`{_path_text(path)}`{used_by}; it breaks when the view is dropped — "
                        f"{fix}"
                    )
                    break
    for name, (old_schema, new_schema) in sorted(moved.items()):
        if resolver.kinds.get((old_schema, name)) != "v":
            continue
        view = f"{old_schema}.{name}"
        for (dependent,) in conn.execute(_BOUND_TO, (_quoted(old_schema, name),)).fetchall():
            through_views.append(
                f"{dependent} is bound to the compatibility view {view}, not to "
                f"{new_schema}.{name}; it breaks when the view is dropped — point it at "
                f"{new_schema}.{name}"
            )
    bodies = len({u.split(": ", 1)[0] for u in unread})
    note = (
        f" ({bodies} bod{'y' if bodies == 1 else 'ies'} could not be read in full, so names "
        f"in them were not checked: {'; '.join(unread)})"
        if unread
        else ""
    )
    offenders = broken + through_views
    only_views = not broken and compatibility_views != "fail"
    return Check.of(
        "dependencies.resolve",
        offenders=offenders,
        ok="no function names a moved table in a way that breaks for any caller, and nothing "
        f"reaches a moved table only through a compatibility view{note}",
        failed=(
            "code reaches moved tables only through compatibility views, and breaks when they "
            "are dropped"
            if not broken
            else "functions name moved tables without a schema and break when called"
        )
        + note,
        warn_only=only_views,
    )


def _quoted(schema: str, name: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in (schema, name))
