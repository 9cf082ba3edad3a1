"""Sessions that are a role: logged in as it where it can log in, ``SET ROLE`` where not.

A privilege tried by a superuser that ``SET ROLE``\\ s misses what stands between
the application and its data before any table is touched: the role's LOGIN
attribute, CONNECT on the database, its own settings (``ALTER ROLE … SET
default_transaction_read_only``), the pooler's user list. So a role that can log
in logs in as itself through the path the application uses (the PgBouncer writer
where there is one), and is tried in a new session of its own on the primary: a
pooler hands out server sessions opened before the migration, which never see a
setting the migration gave the role. Only a NOLOGIN role (a group the
application's roles are members of), or one the harness has no way to log in as,
is tried by ``SET LOCAL ROLE`` on the harness's own connection, and the check
says which.

Two things a probe needs cannot be done as the role itself, so the harness lends
them through a schema of its own, created for the probes and dropped after them,
whose two SECURITY DEFINER functions only the probed roles may call:

- ``freeze_sequences()`` restarts every sequence at its own next value inside the
  caller's transaction. ``ALTER SEQUENCE … RESTART`` is transactional (a new
  relfilenode) and its lock makes other sessions' ``nextval`` wait, so the probes'
  rollback leaves every sequence as it was, and no value another session took is
  handed out again.
- ``open_row(table, name, column)`` opens a cursor on one real row, so that UPDATE
  and DELETE can touch that row (``WHERE CURRENT OF``) while asking for nothing
  but their own privilege: the role needs no SELECT to be tried for UPDATE. With
  a column, the row's value of it comes along, so that the UPDATE can set it to
  what it already is: every trigger fires and no constraint can object.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from harness.connections import Conn, connect, describe

__all__ = ["PROBE_BOUNDS", "Login", "LoginFor", "RoleSession", "RoleSessions"]


@dataclass(frozen=True)
class Login:
    """How the harness logs in as a role.

    ``dsn`` opens the session the probes run in. It should start a new server
    session: a role's settings, its LOGIN and CONNECT are read when a session
    starts, and a pooler hands out server sessions opened before the migration
    changed them. ``pooled``, where the application goes through a pooler, is that
    way in, tried once to show the pooler admits the role. ``path`` names the way
    in, for messages.
    """

    dsn: str
    path: str  # "through the PgBouncer writer", "directly to the primary"
    pooled: str | None = None


LoginFor = Callable[[str], "Login | None"]

_HELPER_FUNCTIONS = """
CREATE FUNCTION {schema}.freeze_sequences() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    last bigint;
    called boolean;
    following numeric;
BEGIN
    IF current_setting('transaction_read_only')::boolean THEN
        RETURN;  -- nothing in it can draw from a sequence, nor restart one
    END IF;
    FOR s IN SELECT c.oid::regclass AS seq, q.seqincrement, q.seqmin, q.seqmax, q.seqstart
               FROM pg_sequence q JOIN pg_class c ON c.oid = q.seqrelid
              WHERE c.relpersistence <> 't' LOOP
        -- From the sequence itself: pg_sequences.last_value is NULL after setval(s, n, false).
        EXECUTE format('SELECT last_value, is_called FROM %s', s.seq) INTO last, called;
        following := CASE WHEN called THEN last::numeric + s.seqincrement ELSE last END;
        IF following NOT BETWEEN s.seqmin AND s.seqmax THEN
            following := s.seqstart;
        END IF;
        EXECUTE format('ALTER SEQUENCE %s RESTART WITH %s', s.seq, following);
    END LOOP;
END $$;

CREATE FUNCTION {schema}.open_row(target regclass, cursor_name text, col name)
RETURNS refcursor
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c refcursor := cursor_name;
BEGIN
    IF col IS NULL THEN
        OPEN c FOR EXECUTE format('SELECT FROM %s', target);
    ELSE
        OPEN c FOR EXECUTE format('SELECT %I::text FROM %s', col, target);
    END IF;
    RETURN c;
END $$;
"""

_CURSOR = "pgcutover_probe_row"
#: the harness's bounds on a probe's transaction, whatever the role's own settings
PROBE_BOUNDS = (
    "SELECT set_config('statement_timeout', '30s', true),"
    " set_config('idle_in_transaction_session_timeout', '0', true)"
)


@dataclass
class RoleSession:
    """A connection that acts as ``role``; each :meth:`transaction` is rolled back."""

    role: str
    conn: Conn
    helper: sql.Identifier
    set_role: bool  # True: the harness's connection, SET LOCAL ROLE in each transaction
    how: str  # for messages: "logged in through the PgBouncer writer", "SET ROLE (NOLOGIN)"

    @contextmanager
    def transaction(self, *, freeze_sequences: bool = True) -> Iterator[Conn]:
        """One transaction as the role, always rolled back, sequences included."""
        with self.conn.transaction(force_rollback=True):
            if self.set_role:
                self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.role)))
            # The role's own timeouts (ALTER ROLE … SET statement_timeout) are what its
            # sessions meet, sessions.new_sessions_work's finding; a probe of its
            # privileges runs under the harness's bound instead, or a tiny one stops it.
            self.conn.execute(PROBE_BOUNDS, prepare=False)
            if freeze_sequences:
                self.conn.execute(
                    sql.SQL("SELECT {}.freeze_sequences()").format(self.helper), prepare=False
                )
            yield self.conn

    def open_row(
        self, table: sql.Composable, column: str | None = None
    ) -> tuple[sql.Identifier, str | None]:
        """A cursor on a real row of ``table`` (it must have one), fetched, for WHERE
        CURRENT OF; and that row's ``column`` as text (None without one, or for NULL)."""
        self.conn.execute(
            sql.SQL("SELECT {}.open_row({}::regclass, {}, {})").format(
                self.helper,
                sql.Literal(table.as_string(self.conn)),
                sql.Literal(_CURSOR),
                sql.Literal(column),
            ),
            prepare=False,
        )
        cursor = sql.Identifier(_CURSOR)
        row = self.conn.execute(sql.SQL("FETCH 1 FROM {}").format(cursor), prepare=False)
        fetched = row.fetchone()
        value = fetched[0] if fetched and column is not None else None
        return cursor, None if value is None else str(value)


class RoleSessions:
    """The sessions of a set of roles, and the helper schema they share, while open.

    ``login`` says how to log in as a role (None: the harness cannot); ``admin`` is
    the harness's own connection, which creates and drops the helper and is the
    one that ``SET ROLE``\\ s for the rest.
    """

    def __init__(self, admin: Conn, login: LoginFor | None) -> None:
        self.admin = admin
        self.login = login
        self.helper = sql.Identifier(f"pgcutover_probe_{secrets.token_hex(4)}")
        self._stack = ExitStack()
        self._sessions: dict[str, RoleSession] = {}
        self.refused: dict[str, str] = {}  # role -> why it could not log in

    def __enter__(self) -> RoleSessions:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._stack.close()
        finally:
            self.admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self.helper))

    def open(self, roles: Mapping[str, bool]) -> None:
        """Create the helper for ``roles`` (role -> whether it can log in), then log each
        in (or note why it cannot)."""
        if not roles:
            return
        with self.admin.transaction():
            self.admin.execute(sql.SQL("CREATE SCHEMA {}").format(self.helper))
            self.admin.execute(sql.SQL(_HELPER_FUNCTIONS).format(schema=self.helper))
            names = sql.SQL(", ").join(sql.Identifier(r) for r in sorted(roles))
            # Granted, not left to PUBLIC: a plan may revoke EXECUTE from PUBLIC by default.
            self.admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(self.helper, names))
            self.admin.execute(
                sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(
                    self.helper, names
                )
            )
        for role, can_login in sorted(roles.items()):
            self._open_one(role, can_login=can_login)

    def _open_one(self, role: str, *, can_login: bool) -> None:
        login = self.login(role) if self.login is not None and can_login else None
        if login is None:
            why = "NOLOGIN" if not can_login else "no login of it known to the harness"
            self._sessions[role] = RoleSession(
                role, self.admin, self.helper, set_role=True, how=f"SET ROLE ({why})"
            )
            return
        try:
            if login.pooled is not None:
                with connect(login.pooled, application_name="pgcutover privileges") as pooled:
                    pooled.execute("SELECT 1")
            conn = self._stack.enter_context(
                connect(login.dsn, application_name="pgcutover privileges", timeout=10)
            )
        except psycopg.Error as exc:
            self.refused[role] = f"{role} cannot log in {login.path}: {describe(exc)}"
            return
        fresh = ", probed in a new session on the primary" if login.pooled else ""
        self._sessions[role] = RoleSession(
            role, conn, self.helper, set_role=False, how=f"logged in {login.path}{fresh}"
        )

    def get(self, role: str) -> RoleSession | None:
        """The role's session; None when its login was refused (see :attr:`refused`)."""
        return self._sessions.get(role)

    def summary(self) -> str:
        """Which roles logged in and which were SET ROLE, in a few words."""
        by_how: dict[str, list[str]] = {}
        for role, session in sorted(self._sessions.items()):
            by_how.setdefault(session.how, []).append(role)
        return "; ".join(f"{', '.join(roles)} {how}" for how, roles in sorted(by_how.items()))
