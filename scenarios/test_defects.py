"""Every check shown to fail: one planted defect per check, each rejected by exactly that check.

Each defect is a small edit of ``plans/kct``, the corrected plan, as a plan author
could make it; the gate runs it on a fresh copy of the seeded legacy database and
must fail the one check the defect belongs to, with its precise message, and no
other. A last plan carries a harmless counterpart of each defect (the same kind of
change, done right) and must pass every check: the checks are sharp, not jumpy.
The replica's check is shown with a replica that stopped replaying, since a plan
cannot make physical replication diverge.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planting import MODES, PLANS, Defect, Edit, failed, modes_for, new_step, planted, run_gate

from harness.catalog import fingerprint
from harness.cluster import Cluster
from harness.databases import connect
from harness.gate import GateReport, verify_database
from harness.plan import load_plan
from harness.runner import Runner
from harness.testing.fix_legacy import LegacyDatabase

_step = new_step

MOVE = "up/002_move_tables.sql"
UNMOVE = "down/002_move_tables.sql"
GRANTS = "up/003_grant_privileges.sql"
UNGRANT = "down/003_grant_privileges.sql"
AUDIT = "up/004_audit.sql"
CACHE = "up/005_cache.sql"
PATH = "up/006_search_path.sql"
STOCK_BODY = (
    "CREATE OR REPLACE FUNCTION public.variant_stock(product_id text) RETURNS bigint\n"
    "LANGUAGE sql STABLE SET search_path = tenant_shared, public\nAS $$\n{body}\n$$;\n"
)
STOCK = "SELECT coalesce(sum(v.stock), 0) FROM product_variants v WHERE v.product_id = $1"

DEFECTS = (
    Defect(
        "a function rewritten to answer otherwise",
        "reads.same_answers",
        "stock_check (as kct_app, product_id=",
        _step(
            7,
            "halve_stock",
            up=STOCK_BODY.format(body="    " + STOCK.replace("coalesce(", "1 + coalesce(")),
            down=STOCK_BODY.format(body="    " + STOCK),
        ),
    ),
    Defect(
        "a foreign key left NOT VALID",
        "foreign_keys.hold",
        "`tenant_kct.orders`: foreign key orders_customer_id_fkey is NOT VALID",
        _step(
            7,
            "recheck_orders",
            up="ALTER TABLE tenant_kct.orders DROP CONSTRAINT orders_customer_id_fkey;\n"
            "ALTER TABLE tenant_kct.orders ADD CONSTRAINT orders_customer_id_fkey\n"
            "    FOREIGN KEY (customer_id) REFERENCES tenant_kct.customers (id)\n"
            "    ON DELETE RESTRICT NOT VALID;\n",
            down="ALTER TABLE tenant_kct.orders VALIDATE CONSTRAINT orders_customer_id_fkey;\n",
        ),
    ),
    Defect(
        "a sequence reset",
        "sequences.not_reset",
        "`tenant_kct.orders_order_number_seq`: last value ",
        _step(
            7,
            "renumber",
            up="SELECT setval('tenant_kct.orders_order_number_seq', 1, false);\n",
            down="SELECT setval('tenant_kct.orders_order_number_seq',\n"
            "    (SELECT max(order_number) + 1 FROM tenant_kct.orders), false);\n",
        ),
    ),
    Defect(
        "a sequence cut loose from its column",
        "sequences.not_reset",
        "`tenant_kct.orders_order_number_seq`: owned by no column after, "
        "public.orders.order_number before",
        _step(
            7,
            "unown",
            up="ALTER SEQUENCE tenant_kct.orders_order_number_seq OWNED BY NONE;\n",
            down="ALTER SEQUENCE tenant_kct.orders_order_number_seq\n"
            "    OWNED BY tenant_kct.orders.order_number;\n",
        ),
    ),
    Defect(
        "a new session broken",
        "sessions.new_sessions_work",
        '`SELECT count(*) FROM (SELECT FROM "customer_insights" LIMIT 10001) AS counted`: '
        'relation "customer_insights" does not exist',
        (Edit(PATH, "tenant_shared, analytics, cache, public", "tenant_shared, cache"),),
    ),
    Defect(
        "an old session broken",
        "sessions.keep_working",
        '`SELECT count(*) FROM (SELECT FROM "suppliers" LIMIT 10001) AS counted` fails from '
        "up/002_move_tables.sql on",
        (
            Edit(
                MOVE, "CREATE VIEW public.suppliers AS SELECT * FROM tenant_shared.suppliers;", ""
            ),
            Edit(GRANTS, "public.suppliers, ", ""),
            Edit(GRANTS, "public.suppliers, ", ""),
            Edit(UNGRANT, "public.suppliers, ", ""),
            Edit(UNGRANT, "public.suppliers, ", ""),
            Edit(UNMOVE, "DROP VIEW public.suppliers;", ""),
        ),
    ),
    Defect(
        "a roundtrip that does not repeat",
        "roundtrip.migrate_again",
        "`audit.audit_log.actor`: default",
        _step(
            7,
            "stamp",
            up="DO $$ BEGIN EXECUTE format(\n"
            "    'ALTER TABLE audit.audit_log ALTER COLUMN actor SET DEFAULT %L',\n"
            "    clock_timestamp()::text); END $$;\n",
            down="ALTER TABLE audit.audit_log ALTER COLUMN actor DROP DEFAULT;\n",
        ),
    ),
    Defect(
        "an over-grant (a deny rule broken)",
        "privileges.tried",
        "kct_readonly can INSERT on tenant_shared.products, which the plan says it must not",
        _step(
            7,
            "reports_write",
            up="GRANT INSERT ON tenant_shared.products TO kct_readonly;\n",
            down="REVOKE INSERT ON tenant_shared.products FROM kct_readonly;\n",
        ),
    ),
    Defect(
        "an application role whose own settings make it read-only (seen only by its login)",
        "privileges.tried",
        "kct_app cannot INSERT on tenant_kct.orders: cannot execute INSERT in a read-only "
        "transaction",
        _step(
            7,
            "app_read_only",
            up="DO $$ BEGIN EXECUTE format('ALTER ROLE kct_app IN DATABASE %I\n"
            "    SET default_transaction_read_only = on', current_database()); END $$;\n",
            down="DO $$ BEGIN EXECUTE format('ALTER ROLE kct_app IN DATABASE %I\n"
            "    RESET default_transaction_read_only', current_database()); END $$;\n",
        ),
    ),
    Defect(
        "the application's role created without LOGIN (CREATE ROLE defaults to NOLOGIN)",
        "roles.created",
        "`kct_app`: the plan leaves it without LOGIN",
        (
            Edit(
                "up/001_create_roles_and_schemas.sql",
                "CREATE ROLE kct_app LOGIN;",
                "CREATE ROLE kct_app;",
            ),
        ),
    ),
    Defect(
        "the application's role created without LOGIN, beside a statement built at run time",
        "roles.created",
        "`kct_app`: the plan leaves it without LOGIN",
        (
            Edit(
                "up/001_create_roles_and_schemas.sql",
                "CREATE ROLE kct_app LOGIN;",
                "CREATE ROLE kct_app;",
            ),
            # One EXECUTE whose text only the server knows: it once made every finding
            # of roles.created a warning, this one included.
            *_step(
                7,
                "dynamic",
                up="DO $$ BEGIN EXECUTE (SELECT 'SELECT 1'); END $$;\n",
                down="SELECT 1;\n",
            ),
        ),
    ),
    Defect(
        "a trigger that raises on every INSERT into a table the application inserts into",
        "privileges.tried",
        "kct_app may INSERT on tenant_kct.order_items, but a trigger items_frozen on "
        "tenant_kct.order_items (function items_frozen) raises: order items are frozen",
        _step(
            7,
            "freeze_items",
            up="CREATE FUNCTION tenant_kct.items_frozen() RETURNS trigger LANGUAGE plpgsql\n"
            "    AS $$ BEGIN RAISE EXCEPTION 'order items are frozen'; END $$;\n"
            "CREATE TRIGGER items_frozen BEFORE INSERT ON tenant_kct.order_items\n"
            "    FOR EACH ROW EXECUTE FUNCTION tenant_kct.items_frozen();\n",
            down="DROP TRIGGER items_frozen ON tenant_kct.order_items;\n"
            "DROP FUNCTION tenant_kct.items_frozen();\n",
        ),
    ),
    Defect(
        "CONNECT taken from PUBLIC, given back to one role (seen only by logging in)",
        "privileges.tried",
        "kct_readonly cannot log in through the PgBouncer writer: ",
        _step(
            7,
            "connect_only_app",
            up="DO $$ BEGIN\n"
            "    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database());\n"
            "    EXECUTE format('GRANT CONNECT ON DATABASE %I TO kct_app', current_database());\n"
            "END $$;\n",
            down="DO $$ BEGIN\n"
            "    EXECUTE format('GRANT CONNECT ON DATABASE %I TO PUBLIC', current_database());\n"
            "    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM kct_app',\n"
            "        current_database());\n"
            "END $$;\n",
        ),
    ),
    Defect(
        "a session break seen only through PgBouncer (the reader, on the replica)",
        "sessions.keep_working",
        "(PgBouncer reader): cannot execute pg_current_xact_id() during recovery",
        _step(
            7,
            "stock_with_txid",
            # Taking a transaction id is a write: fine on the primary, refused on a standby.
            up=STOCK_BODY.format(body="    " + STOCK + " AND txid_current() IS NOT NULL"),
            down=STOCK_BODY.format(body="    " + STOCK),
        ),
    ),
    Defect(
        "a disabled trigger",
        "tables.intact",
        "`tenant_kct.orders`: trigger orders_set_updated_at changed from",
        _step(
            7,
            "quiet_orders",
            up="ALTER TABLE tenant_kct.orders DISABLE TRIGGER orders_set_updated_at;\n",
            down="ALTER TABLE tenant_kct.orders ENABLE TRIGGER orders_set_updated_at;\n",
        ),
    ),
    Defect(
        "a CHECK made NOT VALID (dropped and added back without validation)",
        "tables.intact",
        "`tenant_kct.order_items`: constraint order_items_quantity_check was made NOT VALID: "
        "today's rows satisfy it",
        _step(
            7,
            "recheck_items",
            up="ALTER TABLE tenant_kct.order_items DROP CONSTRAINT order_items_quantity_check;\n"
            "ALTER TABLE tenant_kct.order_items ADD CONSTRAINT order_items_quantity_check\n"
            "    CHECK (quantity > 0) NOT VALID;\n",
            down="ALTER TABLE tenant_kct.order_items\n"
            "    VALIDATE CONSTRAINT order_items_quantity_check;\n",
        ),
    ),
    Defect(
        "a column added NOT NULL, its backfill default dropped after",
        "tables.intact",
        "`tenant_kct.orders`: column channel was added NOT NULL without a default, so every "
        "INSERT that leaves it out",
        _step(
            7,
            "channel",
            up="ALTER TABLE tenant_kct.orders ADD COLUMN channel text NOT NULL DEFAULT 'web';\n"
            "ALTER TABLE tenant_kct.orders ALTER COLUMN channel DROP DEFAULT;\n",
            down="ALTER TABLE tenant_kct.orders DROP COLUMN channel;\n",
        ),
    ),
    Defect(
        "a changed column default",
        "tables.intact",
        "`tenant_kct.orders`: column currency changed from character(3) NOT NULL DEFAULT "
        "'USD'::bpchar to character(3) NOT NULL DEFAULT 'EUR'::bpchar",
        _step(
            7,
            "euro",
            up="ALTER TABLE tenant_kct.orders ALTER COLUMN currency SET DEFAULT 'EUR';\n",
            down="ALTER TABLE tenant_kct.orders ALTER COLUMN currency SET DEFAULT 'USD';\n",
        ),
    ),
    Defect(
        "a materialized view created WITH NO DATA and never refreshed",
        "layout.as_planned",
        "materialized view `cache.product_catalog` was never populated",
        (Edit(CACHE, " GROUP BY p.id;", " GROUP BY p.id\nWITH NO DATA;"),),
    ),
    Defect(
        "an extra grant to PUBLIC",
        "privileges.granted",
        "`audit.audit_log`: PUBLIC, that is every role, was granted SELECT, which no rule",
        (Edit(AUDIT, None, "GRANT SELECT ON audit.audit_log TO PUBLIC;\n"),),
    ),
    Defect(
        "a grant inside a schema the role is denied USAGE on",
        "privileges.granted",
        "`audit.audit_log`: kct_app was granted SELECT, which no rule of the plan allows",
        (Edit(AUDIT, None, "GRANT SELECT ON ALL TABLES IN SCHEMA audit TO kct_app;\n"),),
    ),
    Defect(
        "a SECURITY DEFINER function left executable by every role",
        "privileges.granted",
        "`audit.record_change()`: PUBLIC, that is every role, may EXECUTE this SECURITY DEFINER",
        (Edit(AUDIT, "REVOKE ALL ON FUNCTION audit.record_change() FROM PUBLIC;", ""),),
    ),
    Defect(
        "a function that resolves only through a compatibility view",
        "dependencies.resolve",
        "function public.variant_stock(product_id text) reaches `product_variants` only "
        "through the compatibility view public.product_variants",
        (
            Edit(
                MOVE,
                "ALTER FUNCTION public.variant_stock(text) SET search_path = tenant_shared, "
                "public;",
                "",
            ),
            Edit("plan.toml", None, '\n[dependencies]\ncompatibility_views = "fail"\n'),
        ),
    ),
    Defect(
        "a compatibility view that shows two columns under each other's names",
        "compatibility_views.faithful",
        "`public.customers`: columns first_name, last_name hold other values than the table's",
        (
            Edit(
                MOVE,
                "CREATE VIEW public.customers AS SELECT * FROM tenant_kct.customers;",
                "CREATE VIEW public.customers AS SELECT id, email, last_name AS first_name,\n"
                "    first_name AS last_name, phone, date_of_birth, marketing_opt_in,\n"
                "    loyalty_points, preferred_store, created_at, updated_at\n"
                "  FROM tenant_kct.customers;",
            ),
        ),
    ),
    Defect(
        "a connection limit on an application role below what its PgBouncer opens",
        "connections.room",
        "kct_readonly may open 4 connections per server (CONNECTION LIMIT 4, set by the "
        "migration), but the plan's PgBouncer writer opens up to 5 as kct_readonly",
        _step(
            7,
            "limit",
            up="ALTER ROLE kct_readonly CONNECTION LIMIT 4;\n",
            down="ALTER ROLE kct_readonly CONNECTION LIMIT -1;\n",
        ),
    ),
    Defect(
        "an application role's password expired (its logins trusted here)",
        "connections.room",
        "kct_readonly's password expired at 2020-01-01 00:00:00+00 (VALID UNTIL, set by the "
        "migration)",
        # Roles outlive a gate on the shared cluster: the rollback gives the password back.
        _step(
            7,
            "expire",
            up="ALTER ROLE kct_readonly VALID UNTIL '2020-01-01 00:00:00+00';\n",
            down="ALTER ROLE kct_readonly VALID UNTIL 'infinity';\n",
        ),
    ),
    Defect(
        "every session of the database set to fire no trigger and check no foreign key",
        "settings.for_sessions",
        "database: session_replication_role = replica, set by the migration: its sessions fire "
        "no trigger and check no foreign key",
        _step(
            7,
            "replica_role",
            up="DO $x$ BEGIN EXECUTE format('ALTER DATABASE %I SET session_replication_role = "
            "replica', current_database()); END $x$;\n",
            down="DO $x$ BEGIN EXECUTE format('ALTER DATABASE %I RESET "
            "session_replication_role', current_database()); END $x$;\n",
        ),
    ),
    Defect(
        "the compatibility views' grant forgotten for one role (met only by its old sessions)",
        "sessions.old_sessions_as_roles",
        'as kct_readonly, search_path "$user", public (sessions opened before the migration '
        "keep it): `SELECT segment, count(*), avg(lifetime_value) FROM customer_insights",
        (
            Edit(
                GRANTS,
                "GRANT SELECT ON public.products, public.product_variants, public.suppliers, "
                "public.collections, public.customers, public.orders, public.order_items, "
                "public.appointments, public.measurements, public.customer_insights, "
                "public.product_recommendations TO kct_readonly;",
                "",
            ),
        ),
    ),
)

# The same kinds of change, done right: none of them is a finding.
HARMLESS = (
    # A foreign key added NOT VALID, then validated (the way to add one without a long lock).
    *_step(
        7,
        "harmless",
        up="ALTER TABLE tenant_kct.orders DROP CONSTRAINT orders_customer_id_fkey;\n"
        "ALTER TABLE tenant_kct.orders ADD CONSTRAINT orders_customer_id_fkey\n"
        "    FOREIGN KEY (customer_id) REFERENCES tenant_kct.customers (id)\n"
        "    ON DELETE RESTRICT NOT VALID;\n"
        "ALTER TABLE tenant_kct.orders VALIDATE CONSTRAINT orders_customer_id_fkey;\n"
        # A CHECK added without a long lock: NOT VALID, then validated in the same step.
        "ALTER TABLE tenant_kct.order_items ADD CONSTRAINT order_items_discount_check\n"
        "    CHECK (discount >= 0) NOT VALID;\n"
        "ALTER TABLE tenant_kct.order_items VALIDATE CONSTRAINT order_items_discount_check;\n"
        # A trigger disabled for a bulk fix, and enabled again in the same step.
        "ALTER TABLE tenant_kct.orders DISABLE TRIGGER orders_set_updated_at;\n"
        "ALTER TABLE tenant_kct.orders ENABLE TRIGGER orders_set_updated_at;\n"
        # Storage tuning for a hot table: no value or write depends on it.
        "ALTER TABLE tenant_kct.orders\n"
        "    SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05);\n"
        # A default set on a new table, the same every time.
        "ALTER TABLE audit.audit_log ALTER COLUMN actor SET DEFAULT 'system';\n"
        # A function qualified instead of pinned (with the views still there).
        + STOCK_BODY.replace(" SET search_path = tenant_shared, public", "").format(
            body="    "
            + STOCK.replace("FROM product_variants", "FROM tenant_shared.product_variants")
        ),
        down="ALTER TABLE audit.audit_log ALTER COLUMN actor DROP DEFAULT;\n"
        "ALTER TABLE tenant_kct.orders RESET (fillfactor, autovacuum_vacuum_scale_factor);\n"
        "ALTER TABLE tenant_kct.order_items DROP CONSTRAINT order_items_discount_check;\n"
        + STOCK_BODY.format(body="    " + STOCK),
    ),
    # A materialized view created empty, then filled before the step ends.
    Edit(
        CACHE,
        " GROUP BY p.id;",
        " GROUP BY p.id\nWITH NO DATA;\nREFRESH MATERIALIZED VIEW cache.product_catalog;",
    ),
    # An index built without blocking writes: a step that cannot be one transaction.
    *_step(
        8,
        "index",
        up="CREATE INDEX CONCURRENTLY orders_placed_at_idx ON tenant_kct.orders (placed_at);\n",
        down="DROP INDEX CONCURRENTLY tenant_kct.orders_placed_at_idx;\n",
    ),
    # Columns added that today's INSERTs need not name: nullable, and NOT NULL with a default.
    *_step(
        9,
        "columns",
        up="ALTER TABLE tenant_kct.orders ADD COLUMN gift_note text;\n"
        "ALTER TABLE tenant_shared.products ADD COLUMN featured boolean NOT NULL DEFAULT false;\n",
        down="ALTER TABLE tenant_shared.products DROP COLUMN featured;\n"
        "ALTER TABLE tenant_kct.orders DROP COLUMN gift_note;\n",
    ),
    # A grant the plan allows (kct_readonly reads the audit trail), not one to PUBLIC.
    Edit(AUDIT, None, "GRANT SELECT ON audit.audit_log TO kct_readonly;\n"),
    # A search_path reordered, nothing left out.
    Edit(
        PATH,
        "tenant_kct, tenant_shared, analytics, cache, public",
        "tenant_shared, tenant_kct, cache, analytics, public",
    ),
    Edit("plan.toml", None, '\n[dependencies]\ncompatibility_views = "fail"\n'),
)


def _gate(
    edits: tuple[Edit, ...],
    cluster: Cluster,
    legacy_database: LegacyDatabase,
    tmp: Path,
    *,
    traffic: bool = False,
) -> dict[str, list[str]]:
    plan = planted(PLANS / "kct", tmp / "plan", edits)
    return failed(run_gate(plan, cluster, legacy_database.endpoints, tmp, traffic=traffic))


CASES = [
    pytest.param(defect, mode, id=f"{defect.name}-{mode.replace(' ', '-')}")
    for defect in DEFECTS
    for mode in modes_for(defect.check)
]


@pytest.mark.parametrize(("defect", "mode"), CASES)
def test_planted_defect_fails_exactly_its_check(
    defect: Defect,
    mode: str,
    cluster: Cluster,
    legacy_database: LegacyDatabase,
    tmp_path: Path,
) -> None:
    """In the default mode too, for its reason; there the defect may show in more checks
    (the application's requests, its writes meeting a reset sequence), and without the
    traffic in its check alone."""
    found = _gate(defect.edits, cluster, legacy_database, tmp_path, traffic=mode == "traffic")
    assert defect.check in found, found
    assert mode == "traffic" or set(found) == {defect.check}, found
    assert any(defect.message in d for d in found[defect.check]), found[defect.check]


@pytest.mark.parametrize("mode", MODES)
def test_harmless_counterparts_pass_every_check(
    mode: str, cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    plan = planted(PLANS / "kct", tmp_path / "plan", HARMLESS)
    report = run_gate(plan, cluster, legacy_database.endpoints, tmp_path, traffic=mode == "traffic")
    assert failed(report) == {}
    assert [c.name for c in report.checks if c.verdict == "warn"] == ["lint.squawk"]


# Changes no statement of the application errors on, and that the down step undoes (but
# one), so only the checks of the migrated database can see them.
QUIET = _step(
    7,
    "quiet",
    up="ALTER TABLE tenant_kct.orders DISABLE TRIGGER orders_audit;\n"
    "ALTER SEQUENCE tenant_kct.orders_order_number_seq INCREMENT BY -1;\n"
    "ALTER ROLE kct_readonly CREATEROLE;\n"
    "ALTER FUNCTION public.customer_lifetime_value(text) SECURITY DEFINER;\n"
    "ALTER TABLE tenant_kct.customers SET (autovacuum_enabled = off);\n"
    "ALTER TABLE tenant_kct.appointments SET UNLOGGED;\n"
    # and one the rollback forgets: a rule on a table, left behind
    "CREATE OR REPLACE RULE keep_items AS ON DELETE TO tenant_kct.order_items DO ALSO NOTHING;\n",
    down="ALTER TABLE tenant_kct.appointments SET LOGGED;\n"
    "ALTER TABLE tenant_kct.customers RESET (autovacuum_enabled);\n"
    "ALTER FUNCTION public.customer_lifetime_value(text) SECURITY INVOKER;\n"
    "ALTER ROLE kct_readonly NOCREATEROLE;\n"
    "ALTER SEQUENCE tenant_kct.orders_order_number_seq INCREMENT BY 1;\n"
    "ALTER TABLE tenant_kct.orders ENABLE TRIGGER orders_audit;\n",
)


@pytest.mark.parametrize("mode", MODES)
def test_changes_no_statement_fails_on_are_each_named(
    mode: str, cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A trigger the plan adds switched off, a sequence counting back, powers no grant
    gives (a role's attribute, a function made to run as its owner for every role),
    autovacuum off, a table no longer replicated: each named by its check, and
    the gate's report written (the unlogged table cannot be read on the replica)."""
    found = _gate(QUIET, cluster, legacy_database, tmp_path, traffic=mode == "traffic")
    expected = {
        "tables.intact": [
            "`tenant_kct.orders`: trigger orders_audit was added disabled: it never fires",
            "`tenant_kct.customers`: options changed from none to autovacuum_enabled=off",
            "`tenant_kct.appointments`: persistence changed from permanent to unlogged",
        ],
        "sequences.not_reset": [
            "`tenant_kct.orders_order_number_seq`: INCREMENT BY -1 after, 1 before: it now "
            "counts back over the values it handed out"
        ],
        "privileges.granted": [
            "`public.customer_lifetime_value(customer_id text)`: PUBLIC, that is every role, may "
            "EXECUTE this SECURITY DEFINER function, which runs with its owner's rights "
            "(PostgreSQL's default for a function) — REVOKE EXECUTE ON FUNCTION … FROM PUBLIC",
            "role kct_readonly was given CREATEROLE, with which it can grant itself any role "
            "but a superuser — take it back (ALTER ROLE kct_readonly NO…)",
        ],
    }
    for check, details in expected.items():
        assert sorted(found.get(check, [])) == sorted(details), (check, found)
    for check in ("rollback.exact", "rollback.exact_on_replica"):
        expected[check] = ["unexpected rule `keep_items` on `public.order_items`"]
        # with traffic, also the rows the application wrote to the unlogged table
        assert expected[check][0] in found.get(check, []), (check, found)
    # the old sessions read the unlogged table on the replica, and cannot
    assert "sessions.keep_working" in found, found
    assert mode == "traffic" or set(found) == {*expected, "sessions.keep_working"}, found


def test_tables_moved_out_of_a_schema_its_publication_covers_are_named(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """A CDC pipeline subscribed to ``FOR TABLES IN SCHEMA public`` gets no change of a
    moved table any more, and no statement fails; a publication that names its table
    keeps it through ``SET SCHEMA``."""
    with connect(legacy_database.endpoints.primary) as conn:
        conn.execute("CREATE PUBLICATION cdc_public FOR TABLES IN SCHEMA public")
        conn.execute("CREATE PUBLICATION cdc_orders FOR TABLE public.orders")
    found = _gate((), cluster, legacy_database, tmp_path)
    assert set(found) == {"tables.intact"}, found
    plan = load_plan(PLANS / "kct")
    assert sorted(found["tables.intact"]) == sorted(
        f"`{schema}.{table.split('.')[1]}`: no longer in publication cdc_public (FOR TABLES IN "
        "SCHEMA public): its changes stop reaching the publication's subscribers"
        for table, schema in plan.layout.tables.items()
    )


def test_a_check_added_not_valid_that_rows_violate_is_named_twice(
    cluster: Cluster, legacy_database: LegacyDatabase, tmp_path: Path
) -> None:
    """Today's rows break it: tables.intact says so (validated in a scratch transaction),
    and the application's UPDATE of a row, tried as its role, is stopped by it."""
    edits = _step(
        7,
        "bulk_only",
        up="ALTER TABLE tenant_kct.order_items ADD CONSTRAINT order_items_bulk_only\n"
        "    CHECK (quantity > 1000) NOT VALID;\n",
        down="ALTER TABLE tenant_kct.order_items DROP CONSTRAINT order_items_bulk_only;\n",
    )
    found = _gate(edits, cluster, legacy_database, tmp_path)
    assert set(found) == {"tables.intact", "privileges.tried"}, found
    assert (
        "`tenant_kct.order_items`: constraint order_items_bulk_only was added NOT VALID and "
        'never validated: today\'s rows violate it (check constraint "order_items_bulk_only" '
        'of relation "order_items" is violated by some row)'
    ) in found["tables.intact"]
    assert (
        "kct_app may UPDATE on tenant_kct.order_items, but a constraint order_items_bulk_only "
        "of tenant_kct.order_items, added by the migration, stops it: new row for relation "
        '"order_items" violates check constraint "order_items_bulk_only"'
    ) in found["privileges.tried"], found["privileges.tried"]


def test_replica_that_stopped_replaying_fails_the_replica_check(
    cluster: Cluster, legacy_database: LegacyDatabase
) -> None:
    """Written on the primary after replay paused: only ``replica.matches_primary`` sees it."""
    plan = load_plan(PLANS / "kct")
    endpoints = legacy_database.endpoints
    with connect(endpoints.primary) as conn:
        before = fingerprint(conn)
    with Runner(plan, endpoints.primary) as runner:
        runner.migrate()
    cluster.wait_for_replica()
    with connect(endpoints.replica) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            with connect(endpoints.primary) as conn:
                conn.execute(
                    "INSERT INTO audit.audit_log (actor, table_schema, table_name, operation)"
                    " VALUES ('x', 'tenant_kct', 'orders', 'INSERT')"
                )
            report = GateReport(plan=plan.name)
            verify_database(
                plan,
                endpoints,
                baseline=before,
                wait_for_replica=lambda: None,
                emit=lambda _c: None,
                report=report,
            )
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    found = failed(report)
    assert set(found) == {"replica.matches_primary"}, found
    assert "`audit.audit_log`: 1 row expected, 0 found" in found["replica.matches_primary"]
