"""Connection strings: building them, pointing them at another database, hiding passwords.

A DSN may carry a password; nothing pgcutover prints, logs or reports may show
one, so every DSN that leaves the process goes through :func:`redact` first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["child_env", "make_dsn", "redact", "with_database", "with_login"]


def make_dsn(
    *, host: str, port: int, user: str, dbname: str, password: str | None = None, **params: str
) -> str:
    """A URL; ``params`` go into its query (``sslmode="require"``)."""
    login = user if password is None else f"{user}:{quote(password, safe='')}"
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{login}@{host}:{port}/{dbname}{query}"


def with_database(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    if dsn.startswith(("postgresql://", "postgres://")):
        head, _, tail = dsn.partition("://")
        authority, slash, rest = tail.partition("/")
        query = rest.partition("?")[2] if slash else ""
        return f"{head}://{authority}/{dbname}" + (f"?{query}" if query else "")
    return make_conninfo(dsn, dbname=dbname)


def with_login(dsn: str, *, user: str, password: str | None) -> str:
    """The same server and database, logged in as ``user``."""
    params = {**conninfo_to_dict(dsn), "user": user}
    params.pop("password", None)
    if password is not None:
        params["password"] = password
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


# The password of a URL runs from the colon after the user to the '@' that starts
# the host: the last '@' of the URL, since a password written raw (not
# percent-encoded) may hold '@', '/', ':' or '?' itself. A URL ends at whitespace.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>postgres(?:ql)?://)(?P<user>[^:@/\s]*):\S*?@(?=[^@\s]*(?:\s|$))"
)
# key=value form: a quoted value may hold spaces and escaped quotes; also PGPASSWORD=.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace every password inside ``text`` (URL or key=value form) by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def child_env(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and an environment that carries it for a child program.

    A command line is readable by every user of the machine (``ps``); a
    process's environment only by its owner and root. libpq reads PGPASSWORD.
    """
    params = conninfo_to_dict(dsn)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def database_of(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("dbname", ""))
